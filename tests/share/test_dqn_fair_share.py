"""The real dispatcher hands the round's fair share to the DQN, whose weights read each job's
factor (feature version 5), over real SSH."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from scheduler.policy import WEIGHTS_DIR, DQNPolicy
from tests.dispatch.helpers import TERMINAL, add_bed_hosts, tick_until


def test_the_dispatcher_hands_each_jobs_factor_to_the_dqn(
    svc: Service, sshbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, float] | None] = []
    decide = DQNPolicy.decide

    def recording(self, view, pending, now, fair_share=None):  # noqa: ANN001, ANN202
        # what the real policy got, then its real decision
        seen.append(None if fair_share is None else {j.user: fair_share.factor(j) for j in pending})
        return decide(self, view, pending, now, fair_share)

    monkeypatch.setattr(DQNPolicy, "decide", recording)
    host = sshbed(1)[0]
    add_bed_hosts(svc, [host], root=tmp_path, cpus=1)  # room for one job at a time
    svc.install_policy(str(WEIGHTS_DIR / "dqn_v5.npz"), "v5")
    svc.set_setting("policy", "dqn")
    seen.clear()  # the install's check replay runs the policy without the lab's rules
    alice = Service(svc.ledger, svc.home, user="alice")
    bob = Service(svc.ledger, svc.home, user="bob")
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        assert d.policy().net.uses_fair_share
        mine = [alice.submit(command="sleep 2", cpus=1, mem="128M") for _ in range(2)]
        tick_until(d, lambda: svc.get_job(mine[0])["state"] != "queued")
        theirs = bob.submit(command="sleep 0.2", cpus=1, mem="128M")
        # alice has used the lab, bob not (both share the default project): the policy is told
        # so, job by job
        tick_until(d, lambda: any(s and s.get("bob", 0.0) > s.get("alice", 1.0) for s in seen))
        assert None not in seen  # every round of the lab's rules came with its fair share
        live = [j for j in (*mine, theirs) if svc.get_job(j)["state"] not in TERMINAL]
        svc.cancel(live)
        tick_until(d, lambda: all(svc.get_job(j)["state"] in TERMINAL for j in live), timeout=60)
    finally:
        d.close()
