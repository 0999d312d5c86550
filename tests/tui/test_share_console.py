"""The submit form's shared-lab fields: constraints and arrays, as the CLI takes them."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Input, Static

from lepton_tui.screens.submit import SubmitJobModal
from lepton_tui.service import Service
from tests.tui.conftest import loaded, open_modal, text_of, wait_for
from tests.tui.data import FIXED_NOW, USER


async def test_submit_form_queues_an_array_with_constraints(make_tui, home: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 40)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "s", SubmitJobModal)
        await pilot.press(*"python sweep.py")
        modal.query_one("#f-array", Input).value = "0-3%2x"
        modal.query_one("#f-constraint", Input).value = "zone"
        await pilot.pause()
        assert "array" in str(modal.query_one("#err-array", Static).render())
        assert "not key=value" in str(modal.query_one("#err-constraint", Static).render())
        modal.query_one("#f-array", Input).value = "0-3%2"
        modal.query_one("#f-constraint", Input).value = "zone=r2, rack=4"
        modal.query_one("#f-gpu_type", Input).value = "A100"
        modal.query_one("#f-exclude_host", Input).value = "h9"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SubmitJobModal))
    svc = Service.open(home, user=USER)
    jobs = sorted(svc.list_jobs(), key=lambda j: j["id"])
    assert [(j["array_index"], j["array_limit"]) for j in jobs] == [(i, 2) for i in range(4)]
    assert {j["array_id"] for j in jobs} == {jobs[0]["id"]}
    assert json.loads(jobs[0]["constraints"]) == {
        "exclude": ["h9"], "gpu_type": "A100", "labels": ["rack=4", "zone=r2"],
    }  # fmt: skip
    svc.close()


async def test_cost_screen_shows_each_users_fair_share_factor(make_tui, lab: Path) -> None:
    from lepton_tui.sharing import standings_json

    svc = Service.open(lab, user=USER)
    rows = standings_json(svc.ledger, FIXED_NOW)
    factors = {r["name"]: r["factor"] for r in rows if r["scope"] == "user"}
    svc.close()
    assert factors["alice"] < 1.0 and factors["bob"] < 1.0  # both ran jobs in the lab's data
    app = make_tui()
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.id == "cost-screen")
        await loaded(pilot)
        await pilot.pause()
        text = text_of(app.screen.query_one("#cost-users", Static))
        assert "fair" in text, text
        for name in ("alice", "bob"):
            [line] = [x for x in text.splitlines() if x.strip().startswith(name)]
            assert line.split()[-1] == f"{factors[name]:.2f}", line


async def test_console_queue_groups_an_array_and_expands_it(make_tui, lab: Path) -> None:
    from lepton_tui.validate import expand_jobs
    from lepton_tui.widgets.queue import QueueTable

    svc = Service.open(lab, user=USER)
    ids = svc.submit_many(expand_jobs(["sleep 1"], "0-3%2", ()))
    svc.close()
    app = make_tui()
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.id == "queue")
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        key = f"a{ids[0]}:queued"
        await wait_for(pilot, lambda: key in {k.value for k in table.rows})
        assert not any(str(i) in {k.value for k in table.rows} for i in ids)
        table.focus()
        table.move_cursor(row=table.get_row_index(key))
        assert table.selected_job == ids[0]
        await pilot.press("plus")
        await wait_for(pilot, lambda: all(str(i) in {k.value for k in table.rows} for i in ids))
        labels = {str(table.get_row(str(i))[0]) for i in ids}
        assert labels == {f"{ids[0]}.{n}" for n in range(4)}
        table.move_cursor(row=table.get_row_index(str(ids[2])))
        await pilot.press("plus")
        await wait_for(pilot, lambda: key in {k.value for k in table.rows})


async def test_hosts_screen_marks_gpus_used_outside_lepton(make_tui, lab: Path) -> None:
    from lepton_tui.constraints import outside_gpus
    from lepton_tui.widgets.fleet import FleetTable

    svc = Service.open(lab, user=USER)
    outside = outside_gpus(svc.ledger, svc.ledger.hosts(), FIXED_NOW)
    svc.close()
    assert outside.get("gpu-b")  # the lab's data: gpu-b's GPUs hold memory no job of lepton's holds
    app = make_tui()
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.id == "hosts")
        await loaded(pilot)
        hosts = app.screen.query_one(FleetTable)
        hosts.move_cursor(row=hosts.get_row_index("gpu-b"))
        details = app.screen.query_one("#host-details", Static)
        await wait_for(pilot, lambda: "gpu-b" in text_of(details))
        lines = [x for x in text_of(details).splitlines() if x.strip().startswith("GPU ")]
        marked = {int(x.split()[1]) for x in lines if "in use outside lepton" in x}
        assert marked == {o["gpu"] for o in outside["gpu-b"]}, lines
