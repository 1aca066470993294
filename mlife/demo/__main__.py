import sys

from mlife.demo.cli import main

sys.exit(main())
