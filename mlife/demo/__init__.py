"""`mlife demo`: the closed loop against a running MLife (MLIFE_URL, MLIFE_TOKEN), for one function or several
side by side. See `loop.py` for the steps and `functions.py` for the three example functions."""

from mlife.demo.cli import main
from mlife.demo.functions import FUNCTIONS, Digits, Shapes, Wine
from mlife.demo.loop import FunctionLoop, LoopResult, Stalled, Trained

Demo = Digits  # the digits loop, as `mlife demo` runs it by default

__all__ = ["FUNCTIONS", "Demo", "Digits", "FunctionLoop", "LoopResult", "Shapes", "Stalled", "Trained", "Wine",
           "main"]
