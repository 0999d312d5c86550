"""`hosts ls`: what a host reported is shown as text (never markup, never raw escapes), prices in
the lab's currency, and why a host takes no new jobs."""

from __future__ import annotations

from pathlib import Path

from lepton_tui.dispatch.launch import launch_broken
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from tests.clirun import lepton


def test_hosts_ls_shows_reported_text_safely_and_why_a_host_is_drained(home: Path) -> None:
    svc = Service.open(home)
    try:
        model = "[/bold]\x1b]0;PWNED\x07A100"
        svc.add_host("s1", address="10.0.0.5", price_per_hour=2,
                     capacity={"cpus": 8, "mem_mb": 8192, "gpus": 2, "gpu_model": model})  # fmt: skip
        svc.add_host("s2", address="10.0.0.6")
        svc.set_setting("currency", "EUR")
        d = Dispatcher(svc)
        launch_broken(
            d.ctx, svc.get_host("s1"), [], "OSError: [Errno 28] No space left on device", set()
        )
        svc.set_draining("s2", True)
    finally:
        svc.close()
    out = lepton(home, "hosts", "ls", columns=200)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\\x1b]0;PWNED" in out.stdout and "[/bold]" in out.stdout
    assert "EUR/H" in out.stdout and "2.00" in out.stdout
    assert "launches fail: OSError: [Errno 28] No space left on device" in out.stdout
    assert "drained by" in out.stdout
