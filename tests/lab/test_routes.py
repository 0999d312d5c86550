"""The lab service's routes and the client's calls match: every route but the ones the client
uses inside its own methods has a `LabClient` method of the same name, and every route calls a
`Service` method that exists (a merge that put a block of client methods outside the class, or
a route naming a method the service lost, would fail only at run time, in lab mode)."""

from __future__ import annotations

import inspect
import re

from lepton_tui import lab_routes
from lepton_tui.client import LabClient
from lepton_tui.service import Service

USED_INSIDE_THE_CLIENT = {"whoami", "console_view"}  # hello()/user and the console's reads


def test_every_route_has_a_client_method() -> None:
    missing = sorted(n for n in lab_routes.CALLS if n not in USED_INSIDE_THE_CLIENT and
                     not callable(inspect.getattr_static(LabClient, n, None)))  # fmt: skip
    assert missing == []


def test_every_route_calls_a_service_method_that_exists() -> None:
    called = set(re.findall(r"svc\.([a-z_]+)\(", inspect.getsource(lab_routes)))
    assert sorted(n for n in called if not hasattr(Service, n)) == []
