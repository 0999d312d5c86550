"""The console's fixtures, for the scheduler screen's autopilot panel."""

from tests.tui.conftest import _utc, make_tui  # noqa: F401 - pytest finds fixtures by name
