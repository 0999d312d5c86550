"""The webhook allow-list: the lab service POSTs only to hosts an admin allowed, checked when a
URL is set and again when it is sent, with real web servers on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_tui import notify, webhook_hosts
from lepton_tui.errors import ValidationError
from lepton_tui.service import Service
from lepton_tui.settings import parse_setting
from tests.clirun import lepton
from tests.notify.conftest import Hook
from tests.notify.test_notify import _end


def _set(svc: Service, key: str, value: str) -> None:
    """As `lepton-tui settings set KEY VALUE` does: parse, then the service decides."""
    svc.set_setting(key, parse_setting(key, value))


def _port(hook: Hook) -> int:
    return int(hook.server.server_address[1])


def test_no_allow_list_no_webhook(svc: Service, webhook: Hook) -> None:
    with pytest.raises(ValidationError) as refused:
        _set(svc, "notify_webhook", webhook.url)
    assert "127.0.0.1 is not on the lab's allow-list" in refused.value.message
    assert 'settings set notify_webhook_hosts "127.0.0.1"' in str(refused.value.hint)
    with pytest.raises(ValidationError):  # a user's own webhook: the same rule
        svc.set_notify_prefs(None, None, webhook.url)
    assert svc.settings().get("notify_webhook", "") == ""
    assert svc.notify_prefs()["webhook"] is None


def test_cli_refuses_with_one_line_and_writes_nothing(home: Path, webhook: Hook) -> None:
    res = lepton(home, "settings", "set", "notify_webhook", webhook.url)
    assert res.returncode == 2 and "not on the lab's allow-list" in res.stderr
    assert "notify_webhook_hosts" in res.stderr and "Traceback" not in res.stderr
    assert lepton(home, "settings", "get", "notify_webhook").stdout.strip() == ""
    res = lepton(home, "notify", "set", "--webhook", webhook.url)
    assert res.returncode == 2 and "not on the lab's allow-list" in res.stderr
    assert json.loads(lepton(home, "notify", "show", "--json").stdout)["webhook"] is None


@pytest.mark.parametrize(
    "host",
    [
        "localhost",  # a name that resolves to loopback
        "127.0.0.1",  # loopback written as an address
        "2130706433",  # 127.0.0.1 written as one number: only the resolver tells
    ],
)
def test_a_public_entry_never_reaches_an_internal_address(
    svc: Service, webhook: Hook, host: str
) -> None:
    _set(svc, "notify_webhook_hosts", f"http://{host}")
    with pytest.raises(ValidationError) as refused:
        _set(svc, "notify_webhook", f"http://{host}:{_port(webhook)}/hooks/abc")
    assert "resolves to 127.0.0.1, an internal address" in refused.value.message
    hint = f"settings set notify_webhook_internal_hosts http://{host}`"
    assert hint in str(refused.value.hint)


def test_https_only_unless_the_entry_says_http(svc: Service, webhook: Hook) -> None:
    _set(svc, "notify_webhook_internal_hosts", "127.0.0.1")
    with pytest.raises(ValidationError) as refused:
        _set(svc, "notify_webhook", webhook.url)
    assert "plain http" in refused.value.message
    assert "http://127.0.0.1" in str(refused.value.hint)
    _set(svc, "notify_webhook_internal_hosts", "http://127.0.0.1")
    _set(svc, "notify_webhook", webhook.url)
    assert svc.settings()["notify_webhook"] == webhook.url


def test_an_entry_with_a_port_allows_that_port_only(svc: Service, webhook: Hook) -> None:
    _set(svc, "notify_webhook_internal_hosts", f"http://127.0.0.1:{_port(webhook) + 1}")
    with pytest.raises(ValidationError, match="not on the lab's allow-list"):
        _set(svc, "notify_webhook", webhook.url)
    _set(svc, "notify_webhook_internal_hosts", f"http://127.0.0.1:{_port(webhook)}")
    _set(svc, "notify_webhook", webhook.url)


def test_allowed_internal_host_is_sent_to(svc: Service, webhook: Hook) -> None:
    _set(svc, "notify_webhook_internal_hosts", "http://127.0.0.1")
    svc.set_notify_prefs(["end"], None, webhook.url)
    job = svc.submit(command="true")
    _end(svc, job, "succeeded", 0)
    assert notify.pump(svc.ledger, "me") == 1
    (body,) = webhook.bodies
    assert body["lepton"]["job"]["id"] == job


def test_checked_again_when_sent(svc: Service, webhook: Hook) -> None:
    _set(svc, "notify_webhook_internal_hosts", "http://127.0.0.1")
    _set(svc, "notify_webhook", webhook.url)
    job = svc.submit(command="true", notify=True)
    _end(svc, job, "failed", 1)
    _set(svc, "notify_webhook_internal_hosts", "none")  # the admin takes it back
    for _ in range(3):
        notify.pump(svc.ledger, "me")
    assert webhook.bodies == []
    row = svc.ledger.query_one("SELECT * FROM notifications")
    assert row["state"] == "failed" and row["tries"] == 1  # refused: never tried again
    assert "not on the lab's allow-list" in row["error"]


def test_a_redirect_is_not_followed(svc: Service, webhook: Hook) -> None:
    bouncer = Hook(status=302, location=webhook.url)  # an allowed host sending elsewhere
    try:
        _set(svc, "notify_webhook_internal_hosts", "http://127.0.0.1")
        _set(svc, "notify_webhook", bouncer.url)
        job = svc.submit(command="true", notify=True)
        _end(svc, job, "succeeded", 0)
        notify.pump(svc.ledger, "me")
    finally:
        bouncer.close()
    assert len(bouncer.bodies) == 1 and webhook.bodies == []
    row = svc.ledger.query_one("SELECT * FROM notifications")
    assert row["state"] == "failed" and "redirect" in row["error"]


def test_the_send_connects_to_the_address_that_was_checked(webhook: Hook) -> None:
    """No second lookup between the check and the connection (no DNS rebinding)."""
    settings = {"notify_webhook_internal_hosts": "http://chat.lab.invalid"}
    target = webhook_hosts.check_url(
        f"http://chat.lab.invalid:{_port(webhook)}/hooks/x?a=1", settings,
        resolver=lambda host, port: ["127.0.0.1"],
    )  # fmt: skip
    assert webhook_hosts.post(target, b'{"text": "hi"}', 5.0) == 200
    (body,) = webhook.bodies  # reached, though chat.lab.invalid resolves nowhere
    assert body["_host"] == f"chat.lab.invalid:{_port(webhook)}"


def test_a_name_that_does_not_resolve_is_refused_when_set(svc: Service) -> None:
    _set(svc, "notify_webhook_hosts", "hooks.lepton.invalid")
    with pytest.raises(ValidationError, match="does not resolve"):
        _set(svc, "notify_webhook", "https://hooks.lepton.invalid/x")


def test_wildcards_and_public_addresses(svc: Service) -> None:
    _set(svc, "notify_webhook_hosts", "*.example.org, 93.184.215.14")
    _set(svc, "notify_webhook", "https://93.184.215.14/hooks/x")  # a public address: no lookup
    rules = webhook_hosts.rules_of(svc.settings())
    assert any(r.matches("chat.example.org") for r in rules)
    assert not any(r.matches("example.org") or r.matches("evilexample.org") for r in rules)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("100.64.0.1", False),  # shared address space
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # loopback as IPv4-mapped IPv6
        ("224.0.0.1", False),
    ],
)
def test_what_counts_as_public(address: str, public: bool) -> None:
    assert webhook_hosts.is_public(address) is public


@pytest.mark.parametrize(
    ("key", "value", "word"),
    [
        ("notify_webhook_hosts", "hooks.slack.com/services", "is not a host"),
        ("notify_webhook_hosts", "user@hooks.slack.com", "is not a host"),
        ("notify_webhook_hosts", "hooks slack!com", "is not a host"),
        ("notify_webhook_internal_hosts", "*.lab.internal", "wildcard"),
    ],
)
def test_allow_list_settings_refuse_bad_entries(
    home: Path, key: str, value: str, word: str
) -> None:
    res = lepton(home, "settings", "set", key, value)
    assert res.returncode == 2 and word in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert lepton(home, "settings", "get", key).stdout.strip() == ""


def test_allow_list_settings_are_normalized(home: Path) -> None:
    res = lepton(
        home, "settings", "set", "notify_webhook_hosts", "Hooks.Slack.com, http://chat.lab:8065"
    )
    assert res.returncode == 0, res.stderr
    got = lepton(home, "settings", "get", "notify_webhook_hosts").stdout.strip()
    assert got == "hooks.slack.com,http://chat.lab:8065"
