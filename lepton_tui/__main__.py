"""`python -m lepton_tui` and the `lepton-tui` script: the command line.

`--version` is answered here, before click and the command modules load: a script that checks
the version pays for the interpreter only.
"""

import sys

from lepton_tui import __version__


def main() -> None:
    """Entry point of the `lepton-tui` script."""
    if sys.argv[1:] == ["--version"]:
        print(f"lepton-tui, version {__version__}")
        sys.exit(0)
    from lepton_tui.cli import main as run

    run()


if __name__ == "__main__":
    main()
