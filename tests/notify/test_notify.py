"""Notifications from the ledger's events: each channel for real (a hook command, a local web
server, a sendmail on PATH), exactly one per (job, event, channel), none lost or repeated."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from lepton_tui import notify
from lepton_tui.errors import ValidationError
from lepton_tui.service import Service
from tests.clirun import lepton
from tests.notify.conftest import Hook


def _end(svc: Service, job_id: int, state: str, code: int | None = None) -> None:
    """Run a job to `state` through the ledger, as the dispatcher records it."""
    token = f"t{job_id:05d}abc"
    svc.ledger.start_attempt(job_id, "gpu1", token, [0])
    svc.ledger.transition_attempt(token, "running", job_state="running", started_at=1.0)
    reason = None if state == "succeeded" else f"it {state}"
    svc.ledger.transition_attempt(
        token, state if state != "cancelled" else "cancelled", job_state=state, reason=reason,
        exit_code=code, job_fields={"exit_code": code},
    )  # fmt: skip


def _hook_file(svc: Service, tmp_path: Path) -> Path:
    out = tmp_path / "told.jsonl"
    svc.set_setting("notify_command", f"cat >> {out}; echo >> {out}")
    return out


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_command_hook_gets_the_job_json_once(svc: Service, tmp_path: Path) -> None:
    out = _hook_file(svc, tmp_path)
    told = svc.submit(command="echo hi", notify=True)
    quiet = svc.submit(command="echo hi")  # no --notify, no default: never told
    _end(svc, told, "succeeded", 0)
    _end(svc, quiet, "failed", 3)
    assert notify.pump(svc.ledger, "me") == 1
    assert notify.pump(svc.ledger, "me") == 0  # nothing new: nothing sent again
    (body,) = _lines(out)
    assert body["event"] == "end" and body["job"]["id"] == told
    assert body["job"]["state"] == "succeeded" and body["job"]["exit_code"] == 0
    assert "env" not in body["job"]
    row = svc.ledger.query_one("SELECT * FROM notifications")
    assert row["state"] == "sent" and row["channel"] == "command" and row["tries"] == 1


def test_only_the_chosen_events(svc: Service, tmp_path: Path) -> None:
    out = _hook_file(svc, tmp_path)
    ok = svc.submit(command="true", notify_on="fail,timeout")
    bad = svc.submit(command="false", notify_on="fail,timeout")
    late = svc.submit(command="sleep 9", notify_on="fail,timeout", time="5s")
    _end(svc, ok, "succeeded", 0)
    _end(svc, bad, "failed", 1)
    _end(svc, late, "timeout", 124)
    notify.pump(svc.ledger, "me")
    told = sorted((b["job"]["id"], b["event"]) for b in _lines(out))
    assert told == [(bad, "fail"), (late, "timeout")]


def test_history_before_notifications_is_never_told(home: Path, tmp_path: Path) -> None:
    svc = Service.open(home)
    job = svc.submit(command="true", notify=True)
    _end(svc, job, "succeeded", 0)
    svc.ledger.execute("DELETE FROM notify_cursor")  # as a ledger from before: no cursor
    svc.ledger.execute("UPDATE notify_cursor SET event_id = 0")
    out = _hook_file(svc, tmp_path)
    notify.pump(svc.ledger, "me")
    assert _lines(out) == []
    later = svc.submit(command="true", notify=True)
    _end(svc, later, "succeeded", 0)
    notify.pump(svc.ledger, "me")
    assert [b["job"]["id"] for b in _lines(out)] == [later]
    svc.close()


def _allow_loopback(svc: Service) -> None:
    """The admin's explicit allowance of the test web servers (plain http on loopback)."""
    svc.set_setting("notify_webhook_internal_hosts", "http://127.0.0.1")


def test_webhook_posts_slack_json_to_a_local_server(svc: Service, webhook: Hook) -> None:
    _allow_loopback(svc)
    svc.set_setting("notify_webhook", webhook.url)
    job = svc.submit(command="python train.py", notify=True, name="resnet")
    _end(svc, job, "failed", 2)
    notify.pump(svc.ledger, "me")
    (body,) = webhook.bodies
    assert body["_content_type"] == "application/json"
    assert f"job {job} (resnet)" in body["text"] and "failed" in body["text"]
    assert "exit code 2" in body["text"]
    assert body["lepton"]["job"]["id"] == job


def test_a_users_own_webhook_and_email_win_over_the_lab_s(
    svc: Service, webhook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox = tmp_path / "mailbox"
    fake = tmp_path / "bin" / "sendmail"  # the login node's MTA, as a program on PATH
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "ARGS $*" >> {mailbox}\ncat >> {mailbox}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    _allow_loopback(svc)
    svc.set_setting("notify_webhook", "http://127.0.0.1:9/never")
    svc.set_setting("notify_email", "{user}@lab.example.org")
    svc.set_notify_prefs(["end"], None, webhook.url)
    job = svc.submit(command="true")  # no flag: the user's default (end) applies
    _end(svc, job, "succeeded", 0)
    notify.pump(svc.ledger, "me")
    assert len(webhook.bodies) == 1
    mail = mailbox.read_text()
    assert "ARGS -t -oi" in mail and f"To: {svc.user}@lab.example.org" in mail
    assert f"job {job}" in mail
    states = {r["channel"]: r["state"] for r in svc.ledger.query("SELECT * FROM notifications")}
    assert states == {"webhook": "sent", "email": "sent"}


def test_budget_hold_told_once(svc: Service, tmp_path: Path) -> None:
    from lepton_tui.economics.budgets import set_budget

    out = _hook_file(svc, tmp_path)
    job = svc.submit(command="true", notify_on="hold")
    svc.ledger.set_job_reason(job, "over budget: user x spent $12 of $10 this month")
    notify.pump(svc.ledger, "me")
    assert _lines(out) == []  # no hard budget: nothing can hold a job, the queue is not read
    set_budget(svc.ledger, "user", svc.user, 10, hard=True)
    notify.pump(svc.ledger, "me")
    notify.pump(svc.ledger, "me")
    (body,) = _lines(out)
    assert body["event"] == "hold" and "over budget" in body["text"]


def test_unreachable_webhook_is_retried_then_given_up(svc: Service) -> None:
    clock = [1000.0]
    svc.ledger.clock = lambda: clock[0]
    _allow_loopback(svc)
    svc.set_setting("notify_webhook", "http://127.0.0.1:9/nobody")  # discard port: refused
    job = svc.submit(command="true", notify=True)
    _end(svc, job, "succeeded", 0)
    for _ in range(notify.MAX_TRIES + 2):
        notify.pump(svc.ledger, "me")
        clock[0] += 10_000
    row = svc.ledger.query_one("SELECT * FROM notifications")
    assert row["state"] == "failed" and row["tries"] == notify.MAX_TRIES
    assert "out of reach" in row["error"]


def test_a_failing_command_is_not_run_again(svc: Service, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    svc.set_setting("notify_command", f"echo x >> {runs}; exit 3")
    job = svc.submit(command="true", notify=True)
    _end(svc, job, "succeeded", 0)
    for _ in range(3):
        notify.pump(svc.ledger, "me")
    assert runs.read_text() == "x\n"
    row = svc.ledger.query_one("SELECT * FROM notifications")
    assert row["state"] == "failed" and "exited 3" in row["error"]


def test_a_claim_left_by_a_dead_dispatcher_is_never_sent_again(
    svc: Service, tmp_path: Path
) -> None:
    out = _hook_file(svc, tmp_path)
    job = svc.submit(command="true", notify=True)
    _end(svc, job, "succeeded", 0)
    notify.collect(svc.ledger)
    svc.ledger.execute(
        "UPDATE notifications SET state = 'sending', claimed_by = 'dead:1', tries = 1"
    )
    assert notify.recover(svc.ledger, "me") == 1
    notify.pump(svc.ledger, "me")
    assert _lines(out) == []
    assert svc.ledger.query_one("SELECT state FROM notifications")["state"] == "unknown"


@pytest.mark.parametrize(
    ("key", "value", "word"),
    [
        ("notify_webhook", "ftp://example.org/x", "http(s)"),
        ("notify_webhook", "https://exa mple.org", "http(s)"),
        ("notify_email", "nobody", "not an address"),
        ("notify_email", "{user}@", "not an address"),
    ],
)
def test_settings_refuse_bad_values(home: Path, key: str, value: str, word: str) -> None:
    res = lepton(home, "settings", "set", key, value)
    assert res.returncode == 2 and word in res.stderr
    assert "Traceback" not in res.stderr


def test_settings_accept_and_clear(home: Path) -> None:
    assert lepton(home, "settings", "set", "notify_email", "{user}@lab.org").returncode == 0
    assert lepton(home, "settings", "get", "notify_email").stdout.strip() == "{user}@lab.org"
    assert lepton(home, "settings", "set", "notify_email", "none").returncode == 0
    assert lepton(home, "settings", "get", "notify_email").stdout.strip() == ""


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--notify-on", "ended"], "not an event"),
        (["--no-notify", "--notify-on", "end"], "contradict"),
        (["--max-requeues", "3"], "needs --requeue-on-timeout"),
        (["--requeue-on-timeout"], "needs a time limit"),
        (["--signal", "USR1@120"], "give --time"),
        (["--signal", "USR1@120", "--time", "1m"], "not within --time"),
        (["--signal", "KILLME@1", "--time", "1m"], "not SIGNAL@SECONDS"),
        (["--requeue-on-timeout", "--time", "1h", "--max-requeues", "-1"], "max-requeues"),
    ],
)
def test_submit_refuses_bad_options_and_writes_nothing(
    home: Path, args: list[str], word: str
) -> None:
    res = lepton(home, "submit", *args, "--", "true")
    assert res.returncode == 2 and word in res.stderr, res.stderr
    if (home / "ledger.db").exists():
        assert json.loads(lepton(home, "queue", "--all", "--json").stdout) == []


def test_submit_json_shows_the_options(home: Path) -> None:
    res = lepton(
        home, "submit", "--json", "--notify-on", "fail,end", "--requeue-on-timeout",
        "--max-requeues", "3", "--time", "10m", "--signal", "sigusr2@30", "--", "python", "t.py",
    )  # fmt: skip
    job = json.loads(res.stdout)
    assert job["notify_on"] == "end,fail"
    assert job["requeue_on_timeout"] == 1 and job["max_requeues"] == 3
    assert job["signal"] == "USR2@30" and job["kind"] == "batch" and job["requeues"] == 0
    shown = lepton(home, "show", str(job["id"]), columns=200).stdout
    assert "at the time limit: 0 of 3 so far" in shown and "USR2@30" in shown


def test_notify_prefs_from_the_cli(home: Path) -> None:
    res = lepton(home, "notify", "set", "--on", "end,hold", "--email", "me@lab.example.org")
    assert res.returncode == 0, res.stderr
    prefs = json.loads(lepton(home, "notify", "show", "--json").stdout)
    assert prefs["notify_on"] == ["end", "hold"] and prefs["email"] == "me@lab.example.org"
    job = json.loads(lepton(home, "submit", "--json", "--", "true").stdout)
    assert job["notify_on"] == "end,hold"
    job = json.loads(lepton(home, "submit", "--json", "--no-notify", "--", "true").stdout)
    assert job["notify_on"] is None
    bad = lepton(home, "notify", "set", "--webhook", "gopher://x")
    assert bad.returncode == 2 and "http(s)" in bad.stderr
    assert lepton(home, "notify", "off").returncode == 0
    assert json.loads(lepton(home, "notify", "show", "--json").stdout)["notify_on"] == []


def test_check_helpers() -> None:
    assert notify.check_webhook(" https://chat.lab/hooks/x ") == "https://chat.lab/hooks/x"
    with pytest.raises(ValidationError):
        notify.check_email("a@b")


def test_serve_once_sends_what_is_due(home: Path, tmp_path: Path) -> None:
    svc = Service.open(home)
    out = _hook_file(svc, tmp_path)
    job = svc.submit(command="true", notify=True)
    _end(svc, job, "failed", 1)
    svc.close()
    res = lepton(home, "serve", "--once")
    assert res.returncode == 0, res.stderr
    assert [(b["job"]["id"], b["event"]) for b in _lines(out)] == [(job, "fail")]
    assert lepton(home, "serve", "--once").returncode == 0
    assert len(_lines(out)) == 1


def test_notify_ls_lists_what_was_sent(svc: Service, tmp_path: Path) -> None:
    _hook_file(svc, tmp_path)
    job = svc.submit(command="true", notify=True)
    _end(svc, job, "timeout", 124)
    notify.pump(svc.ledger, "me")
    rows = json.loads(lepton(svc.home, "notify", "ls", "--json").stdout)
    assert [(r["job_id"], r["event"], r["channel"], r["state"]) for r in rows] == [
        (job, "timeout", "command", "sent")
    ]
    assert "timeout" in lepton(svc.home, "notify", "ls").stdout


def test_the_command_is_not_in_any_process_arguments(tmp_path: Path) -> None:
    """The notify command may hold a token. Its text reaches the shell through the environment
    (readable in /proc by its own uid only), never through argv (readable by every user)."""
    import threading

    marker = "tok" + "en-" + os.urandom(6).hex()
    out = tmp_path / "ran"
    command = f"sleep 1; echo {marker} > {out}; cat > {tmp_path / 'stdin'}"
    body = {"event": "end", "job": {"id": 7, "state": "succeeded"}}
    sender = threading.Thread(target=notify.send_command, args=(command, body))
    sender.start()
    seen = []
    try:
        while sender.is_alive():
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    try:
                        argv = (proc / "cmdline").read_bytes()
                    except OSError:
                        continue
                    if marker.encode() in argv:
                        seen.append(argv)
    finally:
        sender.join(30)
    assert out.read_text().strip() == marker  # it ran, with its own words
    assert json.loads((tmp_path / "stdin").read_text())["job"]["id"] == 7
    assert not seen, seen
