"""The console's widgets: small, self-contained, fed with read models from `lepton_tui.views`."""
