"""The dispatcher's host work costs no new threads or interpreters per tick (issue 18).

Counted over real ticks against the loopback sshd hosts: threads alive between ticks, thread
pools made, agent processes started on the hosts. Never timed.
"""

from __future__ import annotations

import threading
import time

import pytest

from inventory import agent_session
from lepton_tui.dispatch.hostpool import HostPool
from lepton_tui.dispatch.loop import Dispatcher
from tests.dispatch.helpers import add_bed_hosts

pytestmark = pytest.mark.ssh


def test_ticks_reuse_threads_and_host_agents(svc, sshbed, tmp_path):
    hosts = sshbed(3)
    add_bed_hosts(svc, hosts, root=tmp_path)
    job = svc.submit(command="sleep 30")
    pool = HostPool(svc.known_hosts)
    d = Dispatcher(svc, pool=pool, poll_timeout_s=10)
    assert d.acquire()
    try:
        for _ in range(20):  # connect, start the agents, launch the job
            d.tick()
            if svc.get_job(job)["state"] == "running":
                break
            time.sleep(0.1)
        assert svc.get_job(job)["state"] == "running"
        d.tick()
        threads, pools = threading.active_count(), pool.threads.pools_made
        for _ in range(5):
            d.tick()
            assert threading.active_count() == threads
        assert pool.threads.pools_made == pools == 1  # one pool for the dispatcher's lifetime
        assert pool.threads.size <= len(hosts) + pool.threads.spare  # sized to the fleet
        transports = [pool.get(h)[1] for h in svc.list_hosts()]
        # one agent process per host connection however many ticks: no interpreter per poll
        assert [agent_session.session_stats(t)["starts"] for t in transports] == [1, 1, 1]
        svc.cancel([job])
        for _ in range(20):
            d.tick()
            if svc.get_job(job)["state"] == "cancelled":
                break
            time.sleep(0.1)
    finally:
        d.close()
