"""The fragmentation measure, each FGD-experiment baseline's choice, and the placement by
fragmentation in the heuristics, on small clusters whose answers are computed by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from scheduler.fragmentation import (
    FragCache,
    Mix,
    OnlineMix,
    least_growth,
    mix_of,
    node_fragmentation,
    shape_of,
)
from scheduler.heuristics import BackfillPolicy, FIFOPolicy, SJFPolicy, TetrisPolicy
from scheduler.model import JobRequest, NodeView, Placement, Resources
from scheduler.packing import (
    PLACERS,
    Cluster,
    NodeList,
    PodList,
    inflate,
    load_nodes,
    load_pods,
    run_one,
)
from tests.scheduler.helpers import check_fits, job, node, res, view

DATA = Path(__file__).resolve().parents[1] / "data"
PODS = DATA / "alibaba2023_pod_slice.csv"
NODES = DATA / "alibaba2023_node_slice.csv"

# a share of half a GPU (half the arrivals), one whole GPU and two whole GPUs (a quarter each)
MIX = mix_of(
    [shape_of(1000, 0, 1, 500)] * 2 + [shape_of(0, 0, 1, 1000), shape_of(0, 0, 2, 1000)],
    coverage=1.0,
)


# -- the measure ------------------------------------------------------------------------------


def test_fragmentation_of_one_node_by_hand() -> None:
    # GPUs with 1000, 600 and 200 milli free: the share fits (600) and strands the 200; one whole
    # GPU fits and strands 600 + 200; two whole GPUs do not fit: all 1800 is stranded for them
    f = node_fragmentation([8000], [1000], [[1000, 600, 200]], [-1], MIX)
    assert f[0] == pytest.approx(0.5 * 200 + 0.25 * 800 + 0.25 * 1800)  # 750


def test_a_node_short_of_cpu_strands_all_its_gpus_for_the_shapes_that_need_cpu() -> None:
    f = node_fragmentation([500], [1000], [[1000, 600, 200]], [-1], MIX)
    assert f[0] == pytest.approx(0.5 * 1800 + 0.25 * 800 + 0.25 * 1800)


def test_gpu_model_and_cpu_only_shapes_count_all_free_gpus() -> None:
    bound = mix_of([shape_of(0, 0, 1, 500, models=0b10)], coverage=1.0)  # model 1 only
    assert node_fragmentation([8000], [1000], [[1000, 300]], [0], bound)[0] == 1300
    assert node_fragmentation([8000], [1000], [[1000, 300]], [1], bound)[0] == 300
    cpu_only = mix_of([shape_of(4000, 0, 0, 0)], coverage=1.0)
    assert node_fragmentation([8000], [1000], [[1000, 600]], [-1], cpu_only)[0] == 1600


def test_a_free_node_is_not_fragmented() -> None:
    assert node_fragmentation([8000], [1000], [[1000, 1000]], [-1], MIX)[0] == 0


def test_growth_matches_recomputing_the_node() -> None:
    rng = np.random.default_rng(3)
    n = 40
    left = rng.choice([0, 150, 300, 500, 700, 1000], size=(n, 4)).astype(float)
    cpu = rng.choice([500, 2000, 8000], size=n).astype(float)
    mem = np.full(n, 1e6)
    models = rng.integers(-1, 2, size=n)
    mix = mix_of(
        [shape_of(1000, 0, 1, 300), shape_of(2000, 0, 1, 700), shape_of(0, 0, 2, 1000),
         shape_of(4000, 0, 0, 0), shape_of(0, 0, 1, 500, models=0b1)],
        coverage=1.0,
    )  # fmt: skip
    cache = FragCache(mix, models)
    cache.rows(np.arange(n), cpu, mem, left)
    for i in range(n):
        for g in range(4):
            if left[i, g] < 300:
                continue
            got = cache.growth(np.array([i]), cpu[[i]] - 1000, mem[[i]], left[[i], g], 300, 1)
            after = left.copy()
            after[i, g] -= 300
            cpu2 = cpu.copy()
            cpu2[i] -= 1000
            direct = FragCache(mix, models)
            direct.rows(np.array([i]), cpu2, mem, after)
            assert got[0] == pytest.approx(direct.frag[i] - cache.frag[i])


def test_the_mix_keeps_the_shapes_covering_the_share_and_renormalises() -> None:
    counts = {shape_of(0, 0, 1, 1000): 60, shape_of(0, 0, 1, 500): 30, shape_of(0, 0, 8, 1000): 10}
    mix = Mix.from_counts(counts, coverage=0.85)
    assert list(mix.milli) == [1000, 500] and mix.weight == pytest.approx([2 / 3, 1 / 3])


def test_the_online_mix_forgets_what_left_the_window() -> None:
    online = OnlineMix(window=4, refresh=1)
    for _ in range(4):
        online.observe(shape_of(0, 0, 1, 500))
    for _ in range(4):
        online.observe(shape_of(0, 0, 1, 1000))
    assert list(online.mix().milli) == [1000]


def test_least_growth_steps_then_tiebreaks() -> None:
    # 30 and 90 are in the same 0.1-GPU step: the tie-break decides; 150 is a step worse
    assert least_growth(np.array([90.0, 30.0, 150.0]), np.array([0, 1, 0])) == 0
    assert least_growth(np.array([90.0, 30.0, -5.0]), np.array([0, 1, 0])) == 2


# -- the baselines' choices -------------------------------------------------------------------


def nodes_of(*rows: tuple[int, int, int, int]) -> NodeList:
    """Nodes from (cpu milli, memory MiB, GPUs, model index)."""
    a = np.array(rows, dtype=np.int64)
    return NodeList(
        tuple(f"n{i}" for i in range(len(rows))),
        a[:, 0].astype(float), a[:, 1].astype(float), a[:, 2], a[:, 3], ("A", "B"),
    )  # fmt: skip


def pods_of(*rows: tuple[int, int, int, int]) -> PodList:
    """Pods from (cpu milli, GPUs, milli per GPU, model mask); 1 GiB of memory each."""
    a = np.array(rows, dtype=np.int64)
    return PodList(a[:, 0], np.full(len(a), 1024), a[:, 1], a[:, 2], a[:, 3])


def choose(policy: str, cluster: Cluster, pods: PodList, k: int) -> tuple[str, tuple[int, ...]]:
    placer = PLACERS[policy](cluster, pods, np.random.default_rng(0))
    p = pods
    fit = cluster.fits(
        int(p.cpu[k]), int(p.mem[k]), int(p.gpus[k]), int(p.milli[k]), int(p.models[k])
    )
    got = placer.choose(k, fit)
    assert got is not None
    return cluster.nodes.names[got[0]], got[1]


def test_dot_product_takes_the_least_aligned_node() -> None:
    c = Cluster(nodes_of((64000, 10**6, 8, 0), (8000, 10**6, 8, 0)))
    for g in range(7):
        c.place(0, 0, 0, 1000, (g,))  # n0: 64 cores and 1 GPU free; n1: 8 cores and 8 GPUs
    # dot n0 = 64/128 * 8/128 + 1/8 * 1/8 = 0.047; n1 = 8/128 * 8/128 + 8/8 * 1/8 = 0.129
    assert choose("dotprod", c, pods_of((8000, 1, 1000, 0)), 0) == ("n0", (7,))


def test_gpu_packing_prefers_shared_gpus_then_used_nodes_then_idle_ones() -> None:
    c = Cluster(nodes_of(*[(64000, 10**6, 8, 0)] * 3))
    c.place(1, 0, 0, 1000, (0,))  # n1: one whole GPU used
    c.place(2, 0, 0, 400, (3,))  # n2: GPU 3 shared, 600 left
    pods = pods_of((1000, 1, 500, 0), (1000, 1, 1000, 0))
    assert choose("packing", c, pods, 0) == ("n2", (3,))  # onto the shared GPU
    # a whole GPU: n1 and n2 both have to open a free GPU (score 49): the first of them
    assert choose("packing", c, pods, 1) == ("n1", (1,))


def test_gpu_clustering_groups_the_same_kind_of_request() -> None:
    c = Cluster(nodes_of(*[(64000, 10**6, 8, 0)] * 3))
    pods = pods_of((1000, 1, 500, 0), (1000, 1, 1000, 0), (1000, 0, 0, 0))
    placer = PLACERS["clustering"](c, pods, np.random.default_rng(0))
    for k, i in ((0, 1), (1, 2)):  # a share on n1, a whole GPU on n2
        placer.choose(k, np.array([i]))
        c.place(i, 1000, 1024, int(pods.milli[k]), placer._gpus(i, k))
        placer.placed(i)
    assert choose_with(placer, c, pods, 0) == "n1"
    assert choose_with(placer, c, pods, 1) == "n2"
    assert choose_with(placer, c, pods, 2) == "n0"  # CPU only: every node scores 0, the first


def choose_with(placer, cluster: Cluster, pods: PodList, k: int) -> str:  # noqa: ANN001
    fit = cluster.fits(int(pods.cpu[k]), 1024, int(pods.gpus[k]), int(pods.milli[k]), 0)
    got = placer.choose(k, fit)
    return cluster.nodes.names[got[0]]


def test_best_fit_takes_the_node_left_emptiest_least() -> None:
    c = Cluster(nodes_of((64000, 10**6, 8, 0), (16000, 10**6, 2, 0)))
    # rest n0 = 0.5 * 60/128 + 0.5 * 7/8 = 0.67; n1 = 0.5 * 12/128 + 0.5 * 1/8 = 0.11
    assert choose("bestfit", c, pods_of((4000, 1, 1000, 0)), 0) == ("n1", (0,))


def test_fgd_takes_the_least_growth_of_fragmentation() -> None:
    # typical shapes: a 700 share and a 300 share, half each
    pods = pods_of((0, 1, 700, 0), (0, 1, 300, 0))
    c = Cluster(nodes_of((8000, 10**6, 2, 0), (8000, 10**6, 2, 0)))
    c.place(0, 0, 0, 700, (1,))  # n0: GPUs with 1000 and 300 free
    placer = PLACERS["fgd"](c, pods, np.random.default_rng(0))
    nodes, gpus, grow = placer.candidates(1, c.fits(0, 1024, 1, 300, 0))
    # a 300 share on n0's GPU 1 (300 -> 0): n0 was 0.5 * 300 = 150 fragmented, now 0
    by = {(int(n), int(g)): float(x) for n, g, x in zip(nodes, gpus, grow, strict=True)}
    assert by == {(0, 0): 0.0, (0, 1): -150.0, (1, 0): 0.0}
    assert placer.choose(1, c.fits(0, 1024, 1, 300, 0)) == (0, (1,))
    # best fit by room would agree here; a 700 share grows n0 and n1 alike (+150): first node
    assert placer.choose(0, c.fits(0, 1024, 1, 700, 0)) == (0, (0,))


def test_gpu_spec_masks_nodes_by_model(tmp_path: Path) -> None:
    (tmp_path / "n.csv").write_text(
        "sn,cpu_milli,memory_mib,gpu,model\na,8000,8192,1,T4\nb,8000,8192,1,V100\n"
    )
    (tmp_path / "p.csv").write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
        "p1,1000,1024,1,1000,V100\np2,1000,1024,1,500,A100|T4\np3,1000,1024,1,500,H100\n"
    )
    nodes = load_nodes(tmp_path / "n.csv")
    pods = load_pods(tmp_path / "p.csv", nodes)
    c = Cluster(nodes)
    assert list(c.fits(1000, 1024, 1, 1000, int(pods.models[0]))) == [1]
    assert list(c.fits(1000, 1024, 1, 500, int(pods.models[1]))) == [0]
    assert list(c.fits(1000, 1024, 1, 500, int(pods.models[2]))) == []  # no node has that model


def test_inflation_reaches_the_target_with_the_pod_that_crosses_it() -> None:
    nodes = load_nodes(NODES)
    pods = load_pods(PODS, nodes)
    gpus = int(nodes.gpus.sum())
    order = inflate(pods, gpus, 1.3, 42)
    per = pods.gpu_milli()[order]
    assert per.sum() >= 1.3 * gpus * 1000 > per.sum() - per.max()
    assert list(inflate(pods, gpus, 1.3, 42)) == list(order)  # the seed decides


@pytest.mark.parametrize("policy", sorted(PLACERS))
def test_every_policy_places_only_what_fits(policy: str) -> None:
    nodes = load_nodes(NODES)
    pods = load_pods(PODS, nodes)
    row = run_one(nodes, pods, policy, 42, 1.3)
    assert 0.0 <= row["unallocated_gpu_share"] < 100.0
    assert row["failed"] > 0  # 130 % of the GPUs cannot all be placed


def test_bench_experiment_prints_json_rows() -> None:
    res_ = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "bench", "--experiment", "fragmentation",
         "--trace", str(PODS), "--node-list", str(NODES), "--inflate", "1.3", "--seeds", "2",
         "--policies", "fgd,lepton", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res_.returncode == 0, res_.stderr
    rows = json.loads(res_.stdout)
    assert [(r["policy"], r["seed"]) for r in rows] == [
        ("fgd", 42), ("lepton", 42), ("fgd", 43), ("lepton", 43)
    ]  # fmt: skip
    assert all(0 <= r["unallocated_gpu_share"] < 100 for r in rows)


def test_bench_experiment_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "pods.csv"
    bad.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1000,1024,1,-5\n")
    for extra in (
        ["--trace", str(bad)],
        ["--trace", str(PODS), "--policies", "fgd,nope"],
        ["--trace", str(PODS), "--inflate", "0"],
        ["--trace", str(tmp_path / "missing.csv")],
        # replay options the experiment has no use for are refused, not ignored
        ["--trace", str(PODS), "--time-limit-factor", "2"],
        ["--trace", str(PODS), "--requeue-on-timeout"],
        ["--trace", str(PODS), "--fair-share"],
        ["--trace", str(PODS), "--load", "1.1"],
    ):
        res_ = subprocess.run(
            [sys.executable, "-m", "lepton_tui", "bench", "--experiment", "fragmentation",
             "--node-list", str(NODES), *extra],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        lines = [x for x in res_.stderr.splitlines() if x.strip()]
        assert res_.returncode == 2 and len(lines) == 1, res_.stderr
        assert lines[0].startswith("lepton-tui: error: ")
        if extra[2:] and extra[2] not in ("--policies", "--inflate"):
            assert f"{extra[2]} does not apply to --experiment fragmentation" in lines[0]


# -- placement by fragmentation in the heuristics ---------------------------------------------


def placed(placements: list[Placement]) -> dict:
    return {p.job_id: (p.node_id, p.gpu_ids) for p in placements}


def test_fifo_keeps_a_node_with_free_gpus_usable_for_gpu_jobs() -> None:
    # n1 has CPUs free and 2 GPUs, n2 few CPUs and 8 GPUs. Best fit puts the CPU job on n2 and
    # leaves it without CPUs for the GPU jobs the lab submits: 8 GPUs stranded.
    n1 = node("n1", cpus=32, gpus=8, running=((res(cpus=0, gpus=6), (0, 1, 2, 3, 4, 5)),))
    n2 = node("n2", cpus=32, gpus=8, running=((res(cpus=28), ()),))
    pending = [job("cpu", cpus=4), job("gpu", cpus=1, gpus=2, at=1)]
    assert (
        placed(FIFOPolicy(placement="bestfit").decide(view(n1, n2), pending, 1))["cpu"][0] == "n2"
    )
    for policy in (FIFOPolicy(placement="fragmentation"), SJFPolicy(), BackfillPolicy()):
        got = placed(policy.decide(view(n1, n2), pending, 1))
        assert got["cpu"][0] == "n1", policy.name


def test_a_share_goes_where_it_fills_a_shared_gpu() -> None:
    # n1: GPU 0 holds a 60 GB share of 80; n2 is idle. A 20 GB share fills n1's GPU 0 exactly.
    n1 = node("n1", gpus=2, running=((res(gpu_mem_gb=60), (0,)),))
    n2 = node("n2", gpus=2)
    pending = [job("s", gpu_mem_gb=20)]
    assert placed(SJFPolicy().decide(view(n1, n2), pending, 0)) == {"s": ("n1", (0,))}


def gpu_node(name: str, model: str) -> NodeView:
    return replace(node(name, gpus=4), gpu_model=model)


@pytest.mark.parametrize("policy", [FIFOPolicy, SJFPolicy, TetrisPolicy, BackfillPolicy])
def test_a_job_naming_gpu_models_runs_only_on_those(policy) -> None:  # noqa: ANN001
    v = view(gpu_node("t4", "T4"), gpu_node("a100", "A100"))
    pending = [
        JobRequest("a", Resources(1.0, 1024, 1), 100.0, gpu_model="A100|H100"),
        JobRequest("h", Resources(1.0, 1024, 1), 100.0, 0.0, 1.0, gpu_model="H100"),
        JobRequest("any", Resources(1.0, 1024, 1), 100.0, 0.0, 2.0),
    ]
    out = policy().decide(v, pending, 0)
    check_fits(v, pending, out)
    got = placed(out)
    assert got["a"][0] == "a100" and "h" not in got
    if policy is not FIFOPolicy:  # FIFO stops at "h", which can never run
        assert "any" in got


def test_placement_must_be_known_and_defaults_per_policy() -> None:
    with pytest.raises(ValueError, match="placement"):
        FIFOPolicy(placement="worst")
    assert FIFOPolicy().placement == "bestfit"
    assert {p().placement for p in (SJFPolicy, TetrisPolicy, BackfillPolicy)} == {"fragmentation"}


def test_stranded_gpus_per_host_by_hand() -> None:
    from scheduler.model import Prices
    from scheduler.stranded import stranded_gpus

    # n1: 2 GPUs of 80 GB, GPU 0 holds a 60 GB share (20 GB left), GPU 1 free; n2 idle.
    # Recent requests: half 40 GB shares, half whole GPUs. On n1 the 20 GB left of GPU 0 fits
    # neither (a quarter GPU stranded for both shapes): 0.25 GPUs. n2: nothing stranded.
    n1 = replace(
        node("n1", gpus=2, running=((res(gpu_mem_gb=60), (0,)),)), prices=Prices(gpu_hour=2.0)
    )
    n2 = replace(node("n2", gpus=2), prices=Prices(gpu_hour=2.0))
    recent = [job("s", gpu_mem_gb=40), job("w", gpus=1)]
    got = {s.host: (s.gpus, s.per_hour) for s in stranded_gpus(view(n1, n2), recent)}
    assert got == {"n1": (0.25, 0.5), "n2": (0.0, 0.0)}


def test_inflate_without_the_experiment_is_refused() -> None:
    res_ = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "bench", "--inflate", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res_.returncode == 2 and "--inflate applies to --experiment" in res_.stderr
