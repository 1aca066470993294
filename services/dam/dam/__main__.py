from dam.app import SPEC
from mlife_shared.cli import main as _main


def main() -> None:
    _main(SPEC)


if __name__ == "__main__":
    main()
