"""Where the console reads its screens from: the ledger (personal mode) or the lab service.

`LedgerSource` calls `screen_data.read_view` on the console's own `Service`. `LabSource` asks the
lab service over its socket: a `watch` stream per shown screen (the service pushes on its tick and
when the ledger changes, so the console sends nothing per refresh), or one `console_view` call.
`ClientPool` makes the lab client safe for the console's many thread workers: each call borrows a
connection of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lepton_tui.fleet_view import ViewMemo
from lepton_tui.screen_data import VIEW_TYPES, from_wire, read_view

if TYPE_CHECKING:  # the client (and the protocol's http modules) load only in lab mode
    from lepton_tui.client import LabClient, ViewStream


class LedgerSource:
    """Personal mode: the screens read the console's own ledger."""

    lab = False

    def __init__(self, svc: Any, demo: bool = False) -> None:
        self.svc = svc
        self.demo = demo
        self.memo = ViewMemo()  # a refresh reads only what can have changed since the last
        # called between the pieces of a read (the app lets a key press be drawn first)
        self.pause: Callable[[], None] | None = None

    def read(self, view: str, args: dict[str, Any], now: float) -> Any:
        return read_view(
            self.svc, view, now, args, demo=self.demo, memo=self.memo, pause=self.pause
        )


class LabSource:
    """Lab mode: the screens read through the lab service; the console opens no ledger."""

    lab = True

    def __init__(self, socket_path: str, pool: ClientPool) -> None:
        self.socket_path = socket_path
        self.pool = pool

    def read(self, view: str, args: dict[str, Any], now: float) -> Any:
        """One read (the service's clock, not `now`: it is the service's ledger)."""
        return from_wire(VIEW_TYPES[view], self.pool.call("console_view", view=view, args=args))

    def watch(self, view: str, args: dict[str, Any], tick_s: float) -> LabWatch:
        """A stream of `view`'s data, pushed by the service."""
        from lepton_tui.client import watch_view

        return LabWatch(view, watch_view(self.socket_path, view, args, tick_s))


class LabWatch:
    """The views a `watch` stream brings, as dataclasses; `close()` from any thread ends it."""

    def __init__(self, view: str, stream: ViewStream) -> None:
        self.view = view
        self.stream = stream

    def __iter__(self) -> Iterator[Any]:
        cls = VIEW_TYPES[self.view]
        for item in self.stream:
            yield from_wire(cls, item)

    def close(self) -> None:
        self.stream.close()


class ClientPool:
    """The `Service` methods of a lab client, callable from any thread: each call borrows an idle
    `LabClient` (one connection each) and gives it back; a client whose call failed is closed."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._idle: list[LabClient] = []
        self._lock = threading.Lock()
        self._user: str | None = None

    def _take(self) -> LabClient:
        from lepton_tui.client import LabClient

        with self._lock:
            if self._idle:
                return self._idle.pop()
        return LabClient(self.socket_path)

    def _give(self, client: LabClient) -> None:
        with self._lock:
            self._idle.append(client)

    def call(self, method: str, /, **args: Any) -> Any:
        return self._run(lambda c: c.call(method, **args))

    def _run(self, fn: Any) -> Any:
        client = self._take()
        try:
            result = fn(client)
        except BaseException:
            client.close()
            raise
        if isinstance(result, Iterator):  # a log stream keeps its connection to the end
            return self._hold(client, result)
        self._give(client)
        return result

    def _hold(self, client: LabClient, items: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from items
        finally:
            client.close()

    @property
    def user(self) -> str:
        if self._user is None:
            self._user = str(self._run(lambda c: c.user))
        return self._user

    def dispatcher_running(self) -> bool:
        return True  # the lab service is the dispatcher

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        from lepton_tui.client import LabClient

        if not callable(getattr(LabClient, name, None)):
            getattr(LabClient(self.socket_path), name)  # LabClient says why it has no such call
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._run(lambda c: getattr(c, name)(*args, **kwargs))

        return method
