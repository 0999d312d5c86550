"""Fair share, limits, constraints and arrays as pure rules, and in the simulator."""

from __future__ import annotations

import math

import pytest

from lepton_tui.errors import ValidationError
from lepton_tui.validate import constraints, parse_array, parse_sweeps, sweep_commands
from scheduler.fairshare import (
    FairShare,
    Limit,
    Limits,
    ShareConfig,
    SharedLabPolicy,
    decayed_amount,
    factors,
    standings,
)
from scheduler.model import (
    ClusterView,
    Job,
    JobRequest,
    Node,
    NodeView,
    Resources,
    Workload,
)
from scheduler.registry import make_policy
from scheduler.simulator import Simulator

GPU = Resources(1, 1024, 1)


def test_factor_is_slurms_classic_two_to_the_minus_usage_over_share():
    f = factors({"alice": 30.0, "bob": 10.0}, {}, ["carol"])
    # alice 3/4 of usage against 1/3 of shares, bob 1/4, carol nothing
    assert f["alice"] == pytest.approx(2 ** (-0.75 / (1 / 3)))
    assert f["bob"] == pytest.approx(2 ** (-0.25 / (1 / 3)))
    assert f["carol"] == 1.0
    # more shares, higher factor for the same usage
    g = factors({"alice": 30.0, "bob": 10.0}, {"alice": 3.0}, [])
    assert g["alice"] == pytest.approx(2 ** (-0.75 / 0.75))


def test_decayed_usage_halves_each_half_life():
    h = 3600.0
    fresh = decayed_amount(1.0, 0.0, 60.0, 60.0, h)
    old = decayed_amount(1.0, 0.0, 60.0, 60.0 + h, h)
    assert old == pytest.approx(fresh / 2)
    assert fresh == pytest.approx(60.0, rel=0.02)
    assert decayed_amount(1.0, 10.0, 5.0, 20.0, h) == 0.0


def test_fair_share_orders_a_level_and_names_who_goes_first():
    st = standings({"alice": 10.0}, {}, ShareConfig(), ["alice", "bob"], [])
    fs = FairShare(st, 1.0)
    a = JobRequest(1, GPU, 60, priority=0, user="alice")
    b = JobRequest(2, GPU, 60, priority=0, user="bob")
    high = JobRequest(3, GPU, 60, priority=1, user="alice")
    assert fs.apply(b).priority > fs.apply(a).priority
    assert fs.apply(high).priority > fs.apply(b).priority  # never passes a priority level
    why = fs.held_back(a, [fs.apply(b)])
    assert why is not None and "fair share" in why and "bob" in why
    assert FairShare(st, 0.0).apply(a) is a


def test_each_limit_holds_with_its_reason():
    lim = Limits([Limit("user", "alice", gpus=2), Limit("project", "p", cpus=4, jobs=2)])
    lim.count("alice", "q", Resources(1, 0, 2))
    why = lim.blocks("alice", "q", GPU)
    assert why is not None and "user alice may hold 2 GPUs" in why
    assert lim.blocks("alice", "q", Resources(1, 0, 0)) is None  # a CPU job passes a GPU limit
    lim.count("bob", "p", Resources(3, 0, 0))
    why = lim.blocks("bob", "p", Resources(2, 0, 0))
    assert why is not None and "project p may hold 4 CPUs" in why
    lim.count("bob", "p", Resources(0.5, 0, 0))
    why = lim.blocks("carol", "p", Resources(0.1, 0, 0))
    assert why is not None and "project p may run 2 jobs" in why
    lim.count_array(7)
    lim.count_array(7)
    assert "at most 2" in (lim.blocks("x", "y", GPU, (7, 2)) or "")
    assert lim.blocks("x", "y", GPU, (7, 3)) is None


def test_gpu_outside_use_keeps_whole_gpu_jobs_off_and_shares_to_what_is_free():
    node = NodeView.empty("n", Resources(8, 64000, 2, 2 * 81920))
    seen = node.with_outside_use((70000, 0), (True, False))
    assert seen.free_gpu_ids == (1,)
    assert seen.gpu_free_mem_mb == (11920, 81920)
    assert seen.pick_gpus(Resources(1, 1024, 0, 70 * 1024)) == (1,)
    after = seen.allocate(Resources(1, 1024, 0, 70 * 1024), (1,))
    assert not after.can_fit(Resources(1, 1024, 0, 70 * 1024))
    assert not after.can_fit(Resources(1, 1024, 1))


def test_heuristics_honour_a_jobs_hosts():
    view = ClusterView(
        (NodeView.empty("a", Resources(4, 8192, 1, 1024)),
         NodeView.empty("b", Resources(4, 8192, 1, 1024))),
    )  # fmt: skip
    for name in ("backfill", "sjf", "tetris", "priority", "conservative", "fifo", "ilp"):
        policy = make_policy(name)
        job = JobRequest(1, GPU, 60, hosts=frozenset({"b"}))
        placed = policy.decide(view, [job], 0.0)
        assert [(p.job_id, p.node_id) for p in placed] == [(1, "b")], name
        nowhere = JobRequest(2, GPU, 60, hosts=frozenset())
        assert policy.decide(view, [nowhere], 0.0) == [], name


def _lab_workload() -> Workload:
    # one GPU; alice queues 6 one-hour jobs, bob one a second later
    jobs = [Job(i, GPU, float(i) * 0.001, 3600.0, 3600.0, user="alice") for i in range(6)]
    jobs.append(Job(6, GPU, 1.0, 3600.0, 3600.0, user="bob"))
    return Workload("lab", jobs, [Node("n", Resources(1, 1024, 1, 1024))], estimate_exact=True)


def _starts(result) -> dict:
    return {r.id: r.start_s for r in result.finished}


def test_simulated_fair_share_starts_bob_before_alices_second_job():
    plain = _starts(Simulator(_lab_workload()).run(make_policy("backfill")))
    assert plain[6] > plain[5]  # FIFO: bob last
    fair = _starts(Simulator(_lab_workload()).run(SharedLabPolicy(make_policy("backfill"))))
    assert fair[6] < fair[1] < fair[2]  # bob right after alice's first


def test_simulated_limit_holds_a_users_gpus():
    jobs = [Job(i, GPU, 0.0, 100.0, 100.0, user="alice") for i in range(4)]
    wl = Workload("lim", jobs, [Node("n", Resources(8, 8192, 4, 4096))], estimate_exact=True)
    free = _starts(Simulator(wl).run(make_policy("backfill")))
    assert sorted(free.values()) == [0.0] * 4
    held = SharedLabPolicy(make_policy("backfill"), limits=[Limit("user", "alice", gpus=2)])
    capped = _starts(Simulator(wl).run(held))
    assert sorted(capped.values()) == [0.0, 0.0, 100.0, 100.0]


def test_array_and_sweep_parsing():
    assert parse_array("0-15%4") == (list(range(16)), 4)
    assert parse_array("1,3,5-6") == ([1, 3, 5, 6], None)
    assert parse_array("%2") == ([], 2)
    for bad in ("5-1", "a-b", "0-3%0", "", "1-"):
        with pytest.raises(ValidationError):
            parse_array(bad)
    sweeps = parse_sweeps(["lr=1e-3,1e-4", "bs=32,64"])
    cmds = sweep_commands(["python", "train.py", "--lr", "{lr}", "--bs", "{bs}"], sweeps)
    assert len(cmds) == 4 and cmds[1] == ["python", "train.py", "--lr", "1e-3", "--bs", "64"]
    one = sweep_commands(["echo {x}"], parse_sweeps(["x=a b,c;d"]))
    assert one == [["echo 'a b'"], ["echo 'c;d'"]]
    with pytest.raises(ValidationError, match="does not appear"):
        sweep_commands(["echo"], sweeps)


def test_constraints_are_checked():
    c = constraints("A100", ["zone=r2"], ["h1"], ["h2"])
    assert c == {"gpu_type": "A100", "labels": ["zone=r2"], "hosts": ["h1"], "exclude": ["h2"]}
    assert constraints(None) == {}
    for args in (("A100;rm",), (None, ["zone"]), (None, [], ["h1"], ["h1"]), (None, [], ["../x"])):
        with pytest.raises(ValidationError):
            constraints(*args)
    assert math.isfinite(1.0)


def test_bench_runs_the_shared_lab_rules_around_a_policy():
    from scheduler.bench import bench_run

    wl = _lab_workload()
    short = Job(6, GPU, 1.0, 60.0, 60.0, user="bob")  # bob's job is short: its wait shows
    wl = Workload("lab", [*wl.jobs[:6], short], wl.nodes, estimate_exact=True)
    plain = bench_run(wl, "backfill")
    fair = bench_run(wl, "backfill", lab_rules={"fair_share": True, "user_gpus": 1})
    assert fair["policy"] == "backfill+fs+gpus1" and plain["policy"] == "backfill"
    assert fair["avg_wait"] < plain["avg_wait"]  # bob no longer waits for all of alice's


def test_replay_wraps_each_policy_in_the_labs_rules(svc):
    from lepton_tui.sharing import lab_policy

    base = make_policy("backfill")
    wrapped = lab_policy(svc.ledger, base)
    assert isinstance(wrapped, SharedLabPolicy) and wrapped.limits == []
    svc.set_setting("fairshare_weight", 0.0)
    assert lab_policy(svc.ledger, base) is base  # fair share off, no limits: as it was
    svc.limit_set("user", svc.user, gpus=2)
    assert lab_policy(svc.ledger, base).limits == [Limit("user", svc.user, 2, None, None)]


def test_ledger_usage_is_the_decayed_gpu_and_cpu_hours(svc):
    from lepton_tui.sharing import lab_standings, share_config, usage

    led = svc.ledger
    now = led.clock()
    with led.tx():
        led.insert("hosts", {"name": "h", "transport": "ssh", "state": "up", "added_at": now,
                             "admin_state": "active", "gpus": 2, "gpu_mem_mb": 2 * 81920})  # fmt: skip
        spans = [("alice", "p", 2, 0, 4.0, now - 7200, now - 3600),
                 ("alice", "q", 0, 40960, 1.0, now - 600, None),
                 ("bob", "p", 0, 0, 8.0, now - 86400 * 8, now - 86400 * 7)]  # fmt: skip
        for i, (user, project, gpus, gmem, cpus, start, end) in enumerate(spans):
            job = led.add_job({"command": "x", "project": project}, user)
            led.execute(
                "INSERT INTO attempts (job_id, attempt_no, host, token, cpus, gpus, gpu_mem_mb, "
                "state, created_at, started_at, ended_at) VALUES (?, 1, 'h', ?, ?, ?, ?, ?, ?, ?, ?)",
                (job, f"t{i}", cpus, gpus, gmem, "running" if end is None else "succeeded",
                 start, start, end),
            )  # fmt: skip
    config = share_config(led, now)
    users, projects = usage(led, config, now)
    h = config.half_life_s
    want = {
        "alice": decayed_amount((2 * 1.0 + 4 * 0.1) / 3600, now - 7200, now - 3600, now, h)
        + decayed_amount((0.5 * 1.0 + 1 * 0.1) / 3600, now - 600, now, now, h),
        "bob": decayed_amount(8 * 0.1 / 3600, now - 86400 * 8, now - 86400 * 7, now, h),
    }
    assert users == pytest.approx(want)
    assert projects["q"] == pytest.approx(want["alice"] - projects["p"] + want["bob"])
    # the dispatcher's reuse: the same sums until an attempt starts or ends
    _, first = lab_standings(led, now, reuse=True)
    _, again = lab_standings(led, now + 1, reuse=True)
    assert [s.usage for s in again] == pytest.approx([s.usage for s in first], rel=1e-4)


def test_place_rules_name_why_a_constrained_job_waits(svc):
    from lepton_tui.place_rules import PlaceRules

    svc.add_host("h1", address="10.0.0.1", capacity={"cpus": 4, "mem_mb": 4096})
    svc.add_host("h2", address="10.0.0.2", capacity={"cpus": 4, "mem_mb": 4096})
    svc.set_draining("h1", True)
    pinned = svc.submit(command="true", host=["h1"], mem="64M")
    big = svc.submit(command="true", host=["h2"], cpus=8, mem="64M")
    free = svc.submit(command="true", exclude_host=["h1"], mem="64M")
    led = svc.ledger
    jobs = led.query("SELECT * FROM jobs ORDER BY id")
    rules = PlaceRules.prepare(led, jobs, led.hosts(), led.clock())
    assert rules.reasons[pinned] == "waiting: the hosts that meet its constraints (h1) are draining"
    assert rules.reasons[big].endswith("(h2) are too small for it")
    assert [j["id"] for j in rules.pending] == [free] and rules.allowed[free] == {"h2"}
