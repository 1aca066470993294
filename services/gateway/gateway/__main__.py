from mlife_shared.cli import main as _main
from gateway.app import SPEC


def main() -> None:
    _main(SPEC)


if __name__ == "__main__":
    main()
