"""The lab's settings: known keys, their defaults, and how a typed value is checked.

Settings live in the ledger's `settings` table as JSON; admins change them with
`lepton-tui settings set KEY VALUE` or from the console. Unknown keys are refused so a typo never
silently does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lepton_tui.errors import ValidationError
from lepton_tui.validate import check_name, parse_duration_s, parse_number


def _policy(value: str) -> str:
    """`auto` (the autopilot chooses) or a registered policy's name (pinned)."""
    from scheduler.registry import POLICY_NAMES  # the one list of names (imports numpy: lazily)

    value = value.strip().lower()
    if value != "auto" and value not in POLICY_NAMES:
        raise ValidationError(
            f"unknown policy {value!r}", f"use auto or one of {', '.join(POLICY_NAMES)}"
        )
    return value


def _share_placement(value: str) -> str:
    """`single` or `joint` (scheduler/joint.py)."""
    value = value.strip().lower()
    if value not in ("single", "joint"):
        raise ValidationError(f"unknown share placement {value!r}", "use single or joint")
    return value


def _seconds(lo: float, hi: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        seconds = parse_duration_s(value, "value")
        if not lo <= seconds <= hi:
            raise ValidationError(f"must be between {lo:g}s and {hi:g}s, got {value!r}")
        return seconds

    return parse


def _number(lo: float, hi: float, integer: bool = False) -> Callable[[str], float]:
    return lambda value: parse_number(value, "value", minimum=lo, maximum=hi, integer=integer)


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in CURRENCIES:
        raise ValidationError(
            f"unknown currency {value!r}", f"use one of {', '.join(sorted(CURRENCIES))}"
        )
    return code


CURRENCIES = frozenset(
    {
        "USD",
        "EUR",
        "GBP",
        "CHF",
        "JPY",
        "CNY",
        "CAD",
        "AUD",
        "SEK",
        "NOK",
        "DKK",
        "INR",
        "KRW",
        "SGD",
        "HKD",
        "NZD",
        "BRL",
        "PLN",
        "CZK",
        "ILS",
    }
)


@dataclass(frozen=True)
class Setting:
    """One known setting."""

    key: str
    default: Any
    parse: Callable[[str], Any]
    help: str


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting(
            "lab_name",
            "lab",
            lambda v: check_name(v, "lab name"),
            "name shown in the console's header",
        ),
        Setting(
            "policy",
            "auto",
            _policy,
            "scheduling policy: auto (default: the autopilot runs the policy that did best on "
            "the lab's recent history) or a policy's name to pin it (see `lepton-tui autopilot`)",
        ),
        Setting(
            "autopilot_period_s",
            3600.0,
            _seconds(10, 7 * 86400),
            "policy auto: how often the autopilot replays the history and chooses again",
        ),
        Setting(
            "autopilot_window_s",
            7 * 86400.0,
            _seconds(3600, 90 * 86400),
            "policy auto: how much recent history each round replays",
        ),
        Setting(
            "autopilot_min_jobs",
            20,
            lambda v: int(_number(1, 1_000_000, integer=True)(v)),
            "policy auto: fewer ended jobs in the window and it runs backfill (the fallback)",
        ),
        Setting(
            "tick_s", 2.0, _seconds(0.05, 3600), "dispatcher tick (how often hosts are polled)"
        ),
        Setting(
            "host_grace_s", 120.0, _seconds(1, 86400), "missed polls for this long mark a host down"
        ),
        Setting(
            "cancel_grace_s",
            10.0,
            _seconds(0.1, 3600),
            "TERM to KILL delay when a job is cancelled",
        ),
        Setting(
            "cost_weight",
            0.0,
            _number(0, 100),
            "trade wait for cost: 0 = fastest, higher = cheaper",
        ),
        Setting(
            "long_share",
            0.0,
            _number(0, 1),
            "sjf only: jobs with a time limit over 1 h may hold at most this share of the CPUs "
            "and of the GPUs (e.g. 0.4), keeping the rest for short jobs; 0 = no limit",
        ),
        Setting(
            "share_placement",
            "single",
            _share_placement,
            "GPU shares of a round: single (each where it strands least, in turn) or joint "
            "(placed together with a look-ahead; heuristics that place by fragmentation only)",
        ),
        Setting(
            "admin_group",
            "lepton-admin",
            lambda v: check_name(v, "group"),
            "Unix group whose members are admins",
        ),
        Setting("currency", "USD", _currency, "currency of every price and report"),
        Setting(
            "idle_gpu_threshold",
            5.0,
            _number(0, 100),
            "GPU utilization (%) under which an allocated GPU is idle",
        ),
        Setting(
            "fairshare_half_life_s",
            7 * 86400.0,
            _seconds(60, 365 * 86400),
            "fair share: half-life of past usage (see `lepton-tui share ls`)",
        ),
        Setting(
            "fairshare_weight",
            1.0,
            _number(0, 1000),
            "fair share: priority levels the factor may add (0 = off; 1 orders jobs of a level)",
        ),
        Setting(
            "idle_gpu_after_s",
            600.0,
            _seconds(10, 86400),
            "how long a GPU must stay idle to be reported",
        ),
        # -- notifications (lepton_tui.notify) --
        Setting(
            "notify_command",
            "",
            lambda v: _notify("check_command")(v),
            "shell command run once per notification, the job's JSON on stdin (none = off)",
        ),
        Setting(
            "notify_webhook",
            "",
            lambda v: _notify("check_webhook")(v),
            "Slack/Mattermost incoming-webhook URL for users without their own (none = off)",
        ),
        Setting(
            "notify_webhook_hosts",
            "",
            lambda v: _webhook_hosts("check_hosts")(v),
            "hosts webhooks may go to, e.g. hooks.slack.com,*.example.org (https and public "
            "addresses only; http://HOST allows http; none = no webhooks)",
        ),
        Setting(
            "notify_webhook_internal_hosts",
            "",
            lambda v: _webhook_hosts("check_internal_hosts")(v),
            "webhook hosts also allowed on loopback, private or link-local addresses (exact "
            "names, e.g. the lab's own chat server)",
        ),
        Setting(
            "notify_email",
            "",
            lambda v: _notify("check_email")(v, template=True),
            "address for users without their own, {user} replaced (none = off); sent with "
            "the login node's sendmail",
        ),
    )
}


def _notify(name: str) -> Callable[..., str]:
    from lepton_tui import notify

    return getattr(notify, name)  # type: ignore[no-any-return]


def _webhook_hosts(name: str) -> Callable[..., str]:
    from lepton_tui import webhook_hosts

    return getattr(webhook_hosts, name)  # type: ignore[no-any-return]


def parse_setting(key: str, value: str) -> Any:
    """Check `value` for `key`; raise ValidationError for an unknown key or a bad value."""
    setting = SETTINGS.get(key)
    if setting is None:
        raise ValidationError(f"unknown setting {key!r}", f"known: {', '.join(sorted(SETTINGS))}")
    try:
        return setting.parse(value)
    except ValidationError as exc:
        raise ValidationError(f"setting {key}: {exc.message}", exc.hint) from None


def effective(stored: dict[str, Any]) -> dict[str, Any]:
    """Every known setting's value in force (stored, else its default), plus stored extras."""
    values = {key: s.default for key, s in SETTINGS.items()}
    values.update(stored)
    return values
