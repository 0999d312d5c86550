"""A request reads the same in the console and the CLI, memory and GPUs never one letter-case
apart, with the right plurals."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.request_text import long_request, plural, short_request, size_words
from tests.clirun import lepton
from tests.tui.conftest import loaded, text_of, wait_for


@pytest.mark.parametrize(
    ("request_", "short", "long"),
    [
        ((1, 1024, 1, 0), "1c 1G 1gpu", "1 CPU, 1 GiB, 1 GPU"),
        ((4, 16384, 2, 0), "4c 16G 2gpu", "4 CPUs, 16 GiB, 2 GPUs"),
        ((0.5, 512, 0, 0), "0.5c 512M", "0.5 CPUs, 512 MiB"),
        ((2, 8192, 0, 20480), "2c 8G gpu:20G", "2 CPUs, 8 GiB, 20 GiB of one GPU"),
        ((64, 1536 * 1024, 8, 0), "64c 1.5T 8gpu", "64 CPUs, 1.5 TiB, 8 GPUs"),
    ],
)
def test_request_short_and_long(request_, short: str, long: str) -> None:
    assert short_request(*request_) == short
    assert long_request(*request_) == long


def test_plural_and_sizes() -> None:
    assert plural(1, "GPU") == "1 GPU"
    assert plural(2, "GPU") == "2 GPUs"
    assert plural(0, "job") == "0 jobs"
    assert plural(1.0, "CPU") == "1 CPU"
    assert size_words(1024) == "1 GiB"
    assert size_words(300) == "300 MiB"


def test_unschedulable_reason_counts_in_words() -> None:
    from lepton_tui.dispatch.view import unschedulable_reason
    from scheduler.model import Resources

    hosts = [{"name": "a", "cpus": 4, "mem_mb": 8192, "gpus": 0, "admin_state": "active"}]
    assert "needs 1 GPU, the most" in unschedulable_reason(Resources(1, 1024, 1), hosts)
    assert "needs 8 CPUs" in unschedulable_reason(Resources(8, 1024, 0), hosts)
    # the last resort names the whole request, in the console's words
    assert "needs 1 CPU, 1 GiB, no active host" in unschedulable_reason(
        Resources(1, 1024, 0), hosts
    )


async def test_console_and_cli_write_requests_alike(make_tui, lab: Path) -> None:
    from lepton_tui.screens.job import JobScreen
    from lepton_tui.widgets.queue import QueueTable

    app = make_tui()
    async with app.run_test(size=(200, 50)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        column = list(table.layout_widths).index("request")
        shown = {str(k.value): table.get_row(k)[column] for k in table.rows}
        assert shown["4"] == "4c 16G 1gpu" and shown["6"] == "1c 1G"
        app.open_job(4)
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await loaded(pilot)
        assert "4 CPUs, 16 GiB, 1 GPU" in text_of(app.screen.query_one("#job-spec"))
    out = lepton(lab, "queue", columns=200)
    assert out.returncode == 0, out.stderr
    assert "4c 16G 1gpu" in out.stdout and "1c 1G " in out.stdout
    assert " 1g " not in out.stdout


def test_host_details_count_in_words(lab: Path) -> None:
    from lepton_tui.screens.hosts import host_details
    from lepton_tui.service import Service
    from tests.tui.data import USER

    svc = Service.open(lab, user=USER)
    try:
        for name, words in (("gpu-a", "32 CPUs, 64 GiB memory, 2 GPUs A100"),
                            ("cpu-c", "16 CPUs, 64 GiB memory, 0 GPUs")):  # fmt: skip
            text = text_of_renderable(host_details(svc.get_host(name), None, "USD"))
            assert words in text, text
            assert "(s)" not in text
    finally:
        svc.close()


def text_of_renderable(renderable) -> str:
    from rich.console import Console

    console = Console(width=200, color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()
