"""`python -m lepton_tui` runs the command line."""

from lepton_tui.cli import main

main()
