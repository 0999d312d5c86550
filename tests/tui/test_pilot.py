"""Pilot tests: the real app, its real ledger, driven by keys and clicks."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Log, Static

from lepton_tui.local_state import local_host_name
from lepton_tui.screens.addhost import AddHostModal
from lepton_tui.screens.help import HelpScreen
from lepton_tui.screens.job import JobScreen
from lepton_tui.screens.submit import SubmitJobModal
from lepton_tui.service import Service
from lepton_tui.widgets.fleet import EmptyFleet, FleetTable
from lepton_tui.widgets.queue import QueueTable
from tests.tui.conftest import host_row, loaded, open_modal, text_of, wait_for
from tests.tui.data import USER


def open_service(home: Path) -> Service:
    return Service.open(home, user=USER)


async def test_empty_console_offers_this_machine(make_tui) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        empty = app.screen.query_one(EmptyFleet)
        assert empty.display and not app.screen.query_one(FleetTable).display
        button = app.screen.query_one("#add-local")
        assert local_host_name() in str(button.label)
        assert "submit" in app.screen.query_one("#queue-panel").border_subtitle


async def test_add_this_machine_from_the_empty_state(make_tui, home: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.click("#add-local")
        await wait_for(pilot, lambda: isinstance(app.screen, AddHostModal))
        modal = app.screen
        assert modal.query_one("#f-name", Input).value == local_host_name()
        await pilot.click("#test")
        await wait_for(pilot, lambda: modal.step in ("done", "failed"))
        status = str(modal.query_one("#status", Static).render())
        assert modal.step == "done", status
        assert "python3" in status and "cpus" in status
        modal.query_one("#add").press()
        await wait_for(pilot, lambda: not isinstance(app.screen, AddHostModal))
        await wait_for(pilot, lambda: app.screen.query_one(FleetTable).row_count == 1)
        # The empty state's buttons are gone: focus is on the queue, so enter opens jobs.
        await wait_for(pilot, lambda: isinstance(app.focused, QueueTable))
    svc = open_service(home)
    host = svc.get_host(local_host_name())
    assert host["transport"] == "local" and host["cpus"] > 0
    svc.close()


async def test_add_ssh_host_accepting_its_fingerprint(make_tui, home: Path, sshbed) -> None:
    import paramiko

    from inventory.hostkeys import fingerprint

    ssh = sshbed(1)[0]
    expected = fingerprint(paramiko.Ed25519Key.from_private_key_file(str(ssh.host_key_path)))
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "a", AddHostModal)
        for fid, value in (("name", "bed1"), ("address", ssh.address), ("port", str(ssh.port)),
                           ("user", ssh.user), ("key", ssh.key_path), ("price", "3.5")):  # fmt: skip
            modal.query_one(f"#f-{fid}", Input).value = value
        await pilot.pause()
        await pilot.click("#test")
        await wait_for(pilot, lambda: modal.step in ("key", "failed"))
        status = str(modal.query_one("#status", Static).render())
        assert modal.step == "key", status
        assert expected in status  # the fingerprint is shown before anything is trusted
        assert (
            not (home / "known_hosts").exists()
            or expected not in (home / "known_hosts").read_text()
        )
        await pilot.click("#accept")
        await wait_for(pilot, lambda: modal.step in ("done", "failed"), timeout=60)
        status = str(modal.query_one("#status", Static).render())
        assert modal.step == "done", status
        # The form's words, not the CLI's: "accepted (--fingerprint)" meant nothing here.
        assert "accepted in this form" in status and "--" not in status, status
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, AddHostModal))
    svc = open_service(home)
    host = svc.get_host("bed1")
    assert host["host_key_fingerprint"] == expected
    assert host["price_per_hour"] == 3.5
    svc.close()


async def test_unreachable_host_says_why_and_stores_nothing(make_tui, home: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "a", AddHostModal)
        modal.query_one("#f-name", Input).value = "ghost"
        modal.query_one("#f-address", Input).value = "127.0.0.1"
        modal.query_one("#f-port", Input).value = str(port)
        await pilot.pause()
        await pilot.click("#test")
        await wait_for(pilot, lambda: modal.step == "failed")
        status = str(modal.query_one("#status", Static).render())
        assert "cannot reach 127.0.0.1" in status and "Nothing was stored" in status
    svc = open_service(home)
    assert svc.list_hosts() == []
    svc.close()


async def test_add_host_fields_are_checked_inline(make_tui, home: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "a", AddHostModal)
        modal.query_one("#f-name", Input).value = "bad name!"
        modal.query_one("#f-port", Input).value = "70000"
        await pilot.pause()
        assert "host name" in str(modal.query_one("#err-name", Static).render())
        assert "port" in str(modal.query_one("#err-port", Static).render())
        await pilot.click("#test")
        await pilot.pause()
        assert modal.step == "fields"
    svc = open_service(home)
    assert svc.list_hosts() == []
    svc.close()


async def test_submit_form_validates_as_you_type(make_tui, home: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "s", SubmitJobModal)
        await pilot.press(*"python train.py")
        modal.query_one("#f-cpus", Input).value = "lots"
        modal.query_one("#f-mem", Input).value = "8X"
        await pilot.pause()
        assert "cpus 'lots' is not a number" in str(modal.query_one("#err-cpus", Static).render())
        assert "mem '8X' is not a size" in str(modal.query_one("#err-mem", Static).render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SubmitJobModal)  # not submitted
        assert open_service(home).list_jobs() == []
        modal.query_one("#f-cpus", Input).value = "4"
        modal.query_one("#f-mem", Input).value = "8G"
        modal.query_one("#f-gpus", Input).value = "1"
        modal.query_one("#f-time", Input).value = "2h"
        modal.query_one("#f-project", Input).value = "vision"
        await pilot.pause()
        assert not modal.query_one("#err-cpus", Static).display
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SubmitJobModal))
        await wait_for(pilot, lambda: app.screen.query_one(QueueTable).row_count == 1)
    jobs = open_service(home).list_jobs()
    assert [(j["command"], j["cpus"], j["mem_mb"], j["gpus"], j["time_limit_s"], j["project"])
            for j in jobs] == [("python train.py", 4.0, 8192, 1, 7200.0, "vision")]  # fmt: skip


async def test_submitted_job_runs_and_its_log_appears(make_tui, home: Path) -> None:
    from lepton_tui.onboarding import onboard

    svc = open_service(home)
    onboard(svc, "login", local=True)
    svc.set_setting("tick_s", 0.2)
    svc.close()
    app = make_tui(dispatch=True, clock=None, refresh_s=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: app.dispatcher_handle is not None)
        assert app.dispatcher_handle.dispatching
        await open_modal(pilot, "s", SubmitJobModal)
        app.screen.query_one(
            "#f-command", Input
        ).value = "nvidia-smi || echo no gpu; echo hello-from-lepton"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SubmitJobModal))
        job_id = app.ledger.query_one("SELECT MAX(id) AS id FROM jobs")["id"]
        app.open_job(job_id, logs=True)
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await loaded(pilot)
        log = app.screen.query_one("#job-log", Log)
        await wait_for(pilot, lambda: "hello-from-lepton" in "\n".join(log.lines), timeout=60)
        await wait_for(
            pilot, lambda: app.ledger.get_job(job_id)["state"] == "succeeded", timeout=60
        )


async def test_cancel_a_queued_job_with_confirmation(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        table.focus()
        table.move_cursor(row=table.get_row_index("4"))  # alice's queued eval job
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("n")  # changed her mind: nothing happens
        await pilot.pause()
        assert app.ledger.get_job(4)["state"] == "queued"
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: app.ledger.get_job(4)["state"] == "cancelled")
        # it stays in the overview a while after it ended, shown as cancelled
        await wait_for(pilot, lambda: table.get_row("4")[1].plain == "cancelled")


async def test_cannot_cancel_another_users_job(make_tui, lab: Path) -> None:
    app = make_tui(user="mallory")
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        table.move_cursor(row=table.get_row_index("5"))  # bob's job
        await pilot.press("c", "y")
        await wait_for(
            pilot, lambda: any("belongs to bob" in n.message for n in app._notifications)
        )
        assert app.ledger.get_job(5)["state"] == "queued"


async def test_filter_the_queue(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        assert table.row_count == 6
        await pilot.press("slash", *"bob")
        await wait_for(pilot, lambda: table.row_count == 2)
        assert set(table.rows) == {"2", "5"}
        assert "filter 'bob'" in app.screen.query_one("#queue-panel").border_title
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 6)
        await pilot.press("3")  # the queue screen filters the same way
        await loaded(pilot)
        await pilot.press("slash", *"queued bob")  # words AND together
        q = app.screen.query_one(QueueTable)
        await wait_for(pilot, lambda: set(q.rows) == {"5"})


async def test_switch_theme_and_screens(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert app.theme == "lepton"
        await pilot.press("t")
        assert app.theme == "lepton-dark"
        await pilot.press("t")
        assert app.theme == "lepton-light"
        for key, screen_id in (("2", "hosts"), ("3", "queue"), ("4", "cost-screen"),
                               ("5", "scheduler"), ("1", "overview")):  # fmt: skip
            await pilot.press(key)
            await wait_for(pilot, lambda sid=screen_id: app.screen.id == sid)
            await loaded(pilot)


async def test_help_lists_every_binding(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = dict(app.screen.rows)
        for key in ("?", "a", "s", "c", "l", "d", "/", "q", ":"):
            assert key in keys, (key, keys)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_drain_from_the_overview(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        fleet = app.screen.query_one(FleetTable)
        fleet.focus()
        fleet.move_cursor(row=fleet.get_row_index("gpu-a"))
        await pilot.press("d")
        await wait_for(pilot, lambda: app.ledger.get_host("gpu-a")["admin_state"] == "draining")
        await pilot.press("d")
        await wait_for(pilot, lambda: app.ledger.get_host("gpu-a")["admin_state"] == "active")


async def test_job_detail_shows_spec_attempts_and_why(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        app.open_job(5)
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await loaded(pilot)
        spec = text_of(app.screen.query_one("#job-spec", Static))
        assert "python big.py" in spec and "4 GPUs fit no host now" in spec
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, JobScreen))


async def test_scheduler_screen_policy_choice_for_admins(make_tui, lab: Path) -> None:
    from textual.widgets import Select

    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.id == "scheduler")
        await loaded(pilot)
        await pilot.pause()
        select = app.screen.query_one("#policy", Select)
        assert select.value == "auto"  # the default in force, though no setting is stored
        assert app.ledger.get_setting("policy") is None  # showing the screen changed nothing
        select.value = "sjf"
        await wait_for(pilot, lambda: app.ledger.get_setting("policy") == "sjf")
        why = app.screen.query_one("#why-job", Input)
        why.focus()
        await pilot.press("5", "enter")
        await wait_for(pilot, lambda: "4 GPUs fit no host" in text_of(app.screen.query_one("#why")))


async def test_scheduler_policy_is_read_only_for_users(make_tui, lab: Path) -> None:
    from textual.widgets import Select

    app = make_tui(user="mallory")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.id == "scheduler")
        await loaded(pilot)
        assert app.screen.query_one("#policy", Select).disabled


async def test_a_big_lab_shows_windows(make_tui, home: Path) -> None:
    """64 hosts x 8 GPUs and 10,000 jobs: one row per host, and a window of the queue."""
    from tests.tui.data import FIXED_NOW, big_fleet, many_jobs

    svc = Service.open(home, user=USER, clock=lambda: FIXED_NOW)
    big_fleet(svc.ledger, 64, 8)
    many_jobs(svc.ledger, 10_000)
    svc.close()
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert app.screen.query_one(FleetTable).row_count == 64
        queue = app.screen.query_one(QueueTable)
        assert queue.row_count == 60
        assert "showing 60 of 10,000" in app.screen.query_one("#queue-panel").border_title
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.id == "queue")
        await loaded(pilot)
        assert app.screen.query_one(QueueTable).row_count == 200
        await pilot.press("slash", *"user7 proj3")
        await wait_for(
            pilot, lambda: "filter 'user7 proj3'" in app.screen.query_one(QueueTable).border_title
        )
        rows = app.screen.query_one(QueueTable)
        await wait_for(pilot, lambda: 0 < rows.row_count < 200)


async def test_job_detail_shows_what_an_attempt_cost(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        app.open_job(7)  # ran one hour on half of gpu-a ($4/h)
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await loaded(pilot)
        attempts = text_of(app.screen.query_one("#job-attempts", Static))
        assert "succeeded" in attempts and "$2.00" in attempts


async def test_remove_a_host_asks_first(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        fleet = await host_row(pilot, "cpu-c")
        await pilot.press("x", "n")
        await pilot.pause()
        assert any(h["name"] == "cpu-c" for h in app.svc.list_hosts())
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: all(h["name"] != "cpu-c" for h in app.svc.list_hosts()))
        await wait_for(pilot, lambda: "cpu-c" not in fleet.rows)
        # a host with running jobs is refused, with the reason, and stays
        fleet.move_cursor(row=fleet.get_row_index("gpu-a"))
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: any("still runs" in n.message for n in app._notifications))
        assert any(h["name"] == "gpu-a" for h in app.svc.list_hosts())


async def test_click_a_header_to_sort_the_queue(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.id == "queue")
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        assert list(table.rows)[0].value == "1"
        columns = list(table.columns.values())
        x = sum(c.get_render_width(table) for c in columns[:2]) + 2  # inside "User"
        await pilot.click(QueueTable, offset=(x + 1, 1))  # row 0 of the table is its header
        await wait_for(pilot, lambda: app.screen.sort == "user")
        await wait_for(pilot, lambda: [k.value for k in table.rows][:3] == ["1", "4", "2"])


async def test_add_host_refuses_a_name_in_use(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "a", AddHostModal)
        modal.query_one("#f-name", Input).value = "gpu-a"
        modal.query_one("#f-address", Input).value = "127.0.0.1"
        await pilot.pause()
        await pilot.press("enter")  # enter in a field runs the test
        await wait_for(pilot, lambda: modal.step == "failed")
        assert "already exists" in str(modal.query_one("#status", Static).render())
        assert len(app.svc.list_hosts()) == 3
