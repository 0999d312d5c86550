"""HostSpec validation: names, addresses, users and paths are whitelisted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.hostspec import NAME_RE, HostSpec, InvalidSpec


def test_defaults() -> None:
    spec = HostSpec("gpu-01", "10.0.0.5")
    assert (spec.port, spec.user, spec.transport, spec.root_dir) == (22, None, "ssh", "~/.lepton")
    assert HostSpec("login", None, transport="local").address is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "-x"},
        {"name": "a b"},
        {"name": "a;id"},
        {"name": "x" * 64},
        {"address": "-oProxyCommand=id"},
        {"address": "a b"},
        {"address": "$(id)"},
        {"address": None},
        {"port": 0},
        {"port": 70000},
        {"user": "root;id"},
        {"user": "-l"},
        {"root_dir": "~/../etc"},
        {"root_dir": "relative/dir"},
        {"root_dir": "~/$(id)"},
        {"root_dir": "/tmp/a b"},
        {"root_dir": "~root/x"},
        {"transport": "telnet"},
        {"key_path": "a\nb"},
        {"gpus_override": -1},
    ],
)
def test_bad_fields_are_refused(kwargs: dict) -> None:
    values = {"name": "h", "address": "10.0.0.1"} | kwargs
    with pytest.raises(InvalidSpec):
        HostSpec(**values)


@given(st.text(max_size=70))
def test_name_whitelist(name: str) -> None:
    try:
        HostSpec(name, "10.0.0.1")
    except InvalidSpec:
        assert not NAME_RE.fullmatch(name)
    else:
        assert NAME_RE.fullmatch(name) and name[0].isascii() and name[0].isalnum()
