"""Workload generators and the trace loader (on the slice in tests/data)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from scheduler.model import Resources
from scheduler.workloads import (
    HPC_NODE,
    TraceError,
    deeprm,
    hpc,
    lab_mix,
    load_node_list,
    load_swf,
    load_trace,
    offered_load,
    rescale_to_load,
    trace_workload,
)

DATA = Path(__file__).resolve().parent.parent / "data"
PODS = DATA / "alibaba2023_pod_slice.csv"
NODES = DATA / "alibaba2023_node_slice.csv"


def test_trace_loader_skips_pending_rows_and_reads_times() -> None:
    tasks = load_trace(PODS)
    assert len(tasks) == 300 - 22
    first = tasks[0]
    assert first.name == "openb-pod-0000"
    assert (first.cpu_milli, first.memory_mib, first.num_gpu, first.gpu_milli) == (
        12000,
        16384,
        1,
        1000,
    )
    assert first.submit_s == 0 and first.duration_s == 12537496
    assert all(t.duration_s > 0 for t in tasks)
    assert [t.submit_s for t in tasks] == sorted(t.submit_s for t in tasks)


def test_trace_requests_whole_gpus_and_shares() -> None:
    wl = trace_workload(PODS, jobs=None, nodes=4, load=None, estimate_sigma=0.0)
    by_id = {j.id: j for j in wl.jobs}
    assert by_id["openb-pod-0000"].request == Resources(12.0, 16384, 1, 0)
    share = by_id["openb-pod-0001"].request  # gpu_milli 460
    assert share.gpus == 0 and share.gpu_mem_mb == int(np.ceil(0.46 * 32768))
    assert wl.estimate_exact and all(j.est_runtime_s == j.runtime_s for j in wl.jobs)


def test_trace_drops_and_counts_tasks_that_fit_no_node() -> None:
    small = Resources(16.0, 65536, 2, 2 * 32768)
    wl = trace_workload(PODS, jobs=None, nodes=2, node_shape=small, load=None)
    assert wl.dropped and wl.info["dropped"] == len(wl.dropped)
    assert len(wl.jobs) + len(wl.dropped) == 278
    assert all("more than any node" in why for _, why in wl.dropped)
    assert all(j.request.gpus <= 2 and j.request.cpus <= 16 for j in wl.jobs)


def test_trace_is_rescaled_to_the_target_load() -> None:
    for target in (0.7, 0.9, 1.1):
        wl = trace_workload(PODS, jobs=200, nodes=1, load=target, seed=1)
        assert wl.info["offered_load"] == pytest.approx(target, rel=1e-6)
    lo = trace_workload(PODS, jobs=200, nodes=1, load=0.7)
    hi = trace_workload(PODS, jobs=200, nodes=1, load=1.1)
    assert lo.jobs[-1].submit_s > hi.jobs[-1].submit_s  # more load = arrivals closer together
    with pytest.raises(TraceError, match="out of reach"):
        trace_workload(PODS, jobs=200, nodes=8, load=1.1)


def test_offered_load_counts_only_work_inside_the_window() -> None:
    submit = np.array([0.0, 10.0])
    dur = np.array([1e9, 5.0])
    gpus = np.array([1.0, 1.0])
    # window 10 s: the first task adds 10 GPU-s, the second 0 (it starts at the window's end)
    assert offered_load(submit, dur, gpus, 1.0, 1.0) == pytest.approx(1.0)
    scale, reached = rescale_to_load(submit, dur, gpus, 2.0, 0.5)
    assert reached == pytest.approx(0.5)


def test_estimates_carry_a_lognormal_error_and_seeds_repeat() -> None:
    a = trace_workload(PODS, jobs=200, nodes=1, estimate_sigma=0.5, seed=3)
    b = trace_workload(PODS, jobs=200, nodes=1, estimate_sigma=0.5, seed=3)
    c = trace_workload(PODS, jobs=200, nodes=1, estimate_sigma=0.5, seed=4)
    assert a.jobs == b.jobs and a.jobs != c.jobs
    ratio = np.log([j.est_runtime_s / j.runtime_s for j in a.jobs])
    assert 0.35 < ratio.std() < 0.65 and not a.estimate_exact


def test_node_list_sampling() -> None:
    nodes = load_node_list(NODES)
    assert len(nodes) == 21 and nodes[0].capacity == Resources(64.0, 262144, 2, 2 * 32768)
    wl = trace_workload(PODS, jobs=100, nodes=5, node_list=NODES, seed=2, load=None)
    assert len(wl.nodes) == 5 and len({n.id for n in wl.nodes}) == 5
    assert {n.id for n in wl.nodes} <= {n.id for n in nodes}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,cpu_milli\nx,1\n", "missing column(s) memory_mib"),
        ("{h}\np,abc,1,1,1000,,LS,Running,0,10,0\n", "row 2: cpu_milli 'abc' is not a number"),
        (
            "{h}\np,1,1,1,1000,,LS,Running,0,10,0\np,1,-5,1,1000,,LS,Running,0,10,0\n",
            "row 3: memory_mib '-5'",
        ),
        ("{h}\np,1,1,1,1000,,LS,Running,0,5,5\n", "row 2: deletion_time 5 is not after"),
        ("{h}\np,1,1,1,1000,,LS,Pending,0,5,\n", "no usable rows"),
        ("{h}\np,1,1,1,1500,,LS,Running,0,10,0\n", "gpu_milli 1500"),
    ],
)
def test_bad_traces_name_the_row_and_field(tmp_path: Path, text: str, message: str) -> None:
    header = (
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
        "creation_time,deletion_time,scheduled_time"
    )
    path = tmp_path / "t.csv"
    path.write_text(text.replace("{h}", header))
    with pytest.raises(TraceError) as err:
        load_trace(path)
    assert message in str(err.value) and "t.csv" in str(err.value)


def test_deeprm_follows_the_paper_mix() -> None:
    wl = deeprm(2000, seed=1)
    short = [j for j in wl.jobs if j.runtime_s <= 3 * 60]
    assert 0.75 < len(short) / len(wl.jobs) < 0.85
    assert all(
        j.runtime_s in {60.0 * d for d in (1, 2, 3, 10, 11, 12, 13, 14, 15)} for j in wl.jobs
    )
    for j in wl.jobs:
        big, small = max(j.request.cpus, j.request.gpus), min(j.request.cpus, j.request.gpus)
        assert 5 <= big <= 10 and 1 <= small <= 2
    gaps = np.diff([j.submit_s for j in wl.jobs])
    assert (gaps >= 0).all() and wl.estimate_exact
    # Bernoulli arrivals at rate 0.7 per step: about 0.7 jobs per 60 s step
    assert len(wl.jobs) / (wl.jobs[-1].submit_s / 60) == pytest.approx(0.7, rel=0.1)


def test_lab_mix_has_every_kind_and_hits_the_gpu_load() -> None:
    wl = lab_mix(1500, load=0.9, seed=5)
    kinds = {j.kind for j in wl.jobs}
    assert kinds == {"train", "notebook", "sweep", "cpu"}
    assert {j.request.gpus for j in wl.jobs if j.kind == "train"} == {1, 2, 4, 8}
    assert all(j.request.is_gpu_share for j in wl.jobs if j.kind == "notebook")
    durations = np.array([j.runtime_s for j in wl.jobs])
    assert durations.max() > 20 * np.median(durations)  # heavy tail
    per_gpu = wl.nodes[0].gpu_mem_per_gpu_mb
    gpu_s = sum((j.request.gpus or j.request.gpu_mem_mb / per_gpu) * j.runtime_s for j in wl.jobs)
    span = wl.info["span_s"]
    assert gpu_s / (span * 64) == pytest.approx(0.9, rel=1e-6)
    assert lab_mix(100, seed=1).jobs == lab_mix(100, seed=1).jobs


TINY_SWF = DATA / "tiny.swf"
LUBLIN_SWF = DATA / "lublin_256.swf"


def test_swf_reader_reads_fields_and_fallbacks() -> None:
    tasks = load_swf(TINY_SWF)
    by_name = {t.name: t for t in tasks}
    assert set(by_name) == {"1", "2", "4", "5", "6"}  # job 3 has no run time (-1): skipped
    one = by_name["1"]
    assert (one.cpu_milli, one.submit_s, one.duration_s, one.estimate_s) == (64000, 0, 3600, 7200)
    assert one.user == "user-1" and one.memory_mib == 0
    assert by_name["2"].estimate_s == 0  # requested time unknown
    assert by_name["2"].cpu_milli == 8000  # requested processors, allocated unknown
    four = by_name["4"]
    assert four.cpu_milli == 32000  # requested -1: the allocated processors
    assert four.memory_mib == 64  # 2048 KB per processor x 32
    # load_trace picks the reader by suffix
    assert load_trace(TINY_SWF) == tasks


def test_swf_trace_on_a_cpu_only_node_uses_cpu_load_and_requested_times() -> None:
    wl = trace_workload(TINY_SWF, jobs=None, nodes=1, node_shape=HPC_NODE, load=None,
                        estimate_sigma=None)  # fmt: skip
    by_id = {j.id: j for j in wl.jobs}
    assert by_id["1"].est_runtime_s == 7200 and by_id["1"].request == Resources(64.0, 0, 0)
    assert [j.submit_s for j in wl.jobs] == [0, 60, 180, 240, 300]  # native arrival times
    assert wl.info["load_of"] == "CPUs" and wl.info["scale"] == 1.0
    # a CPU load is reachable on a CPU-only node (it used to say "out of reach on 0 GPUs")
    scaled = trace_workload(LUBLIN_SWF, jobs=300, nodes=1, node_shape=HPC_NODE, load=0.9)
    assert scaled.info["offered_load"] == pytest.approx(0.9, rel=1e-3)
    # exact estimates on request
    exact = trace_workload(TINY_SWF, jobs=None, nodes=1, node_shape=HPC_NODE, load=None,
                           estimate_sigma=0.0)  # fmt: skip
    assert exact.estimate_exact


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (b"1 0 -1 10 1 -1 -1 1 60 -1 1 1 -1 -1 1 -1 -1 -1\n2 5 -1 10", "4 fields"),
        (b"1 0 -1 10 1 -1 -1 1 60 -1 1 1 -1 -1 1 -1 -1 -1 7\n", "19 fields"),
        (b"1 0 -1 ten 1 -1 -1 1 60 -1 1 1 -1 -1 1 -1 -1 -1\n", "run time 'ten' is not a number"),
        (b"; caf\xe9\n1 0 -1 10 1 -1 -1 1 60 -1 1 1 -1 -1 1 -1 -1 -1\n", "not UTF-8 text"),
        (b"; only comments\n", "no usable jobs"),
    ],
)
def test_swf_errors_name_the_line(tmp_path: Path, content: bytes, text: str) -> None:
    path = tmp_path / "bad.swf"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=text) as info:
        load_trace(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_swf_truncated_last_line_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cut.swf"
    path.write_bytes(b"1 0 -1 10 1 -1 -1 1 60 -1 1 1 -1 -1 1 -1 -1 -1\n2 5 -1 10 1 -1")
    with pytest.raises(TraceError, match=r"cut.swf line 2: 6 fields.*truncated"):
        load_trace(path)


def test_csv_trace_errors_are_one_short_line(tmp_path: Path) -> None:
    header = PODS.read_text().splitlines()[0]
    good = PODS.read_text().splitlines()[1]
    cases = {
        "latin1.csv": (header + "\n" + good + "\n").encode() + b"caf\xe9,1\n",
        "huge.csv": (header + "\n" + good + "\n" + "x" * 131_073 + ",1\n").encode(),
        "cut.csv": (header + "\n" + good + "\n" + ",".join(good.split(",")[:4])).encode(),
        "long.csv": (header + "\n" + good.replace("12000", "1" + "2" * 5000, 1) + "\n").encode(),
    }
    expect = {
        "latin1.csv": "not UTF-8 text",
        "huge.csv": "a field is longer than 131,072 characters",
        "cut.csv": "line 3: 4 of 11 fields (a truncated row?)",
        "long.csv": "cpu_milli '1222",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(TraceError, match=re.escape(expect[name])) as info:
            load_trace(path)
        assert len(str(info.value)) < 200, name


def test_hpc_follows_the_lublin_feitelson_model() -> None:
    wl = hpc(4000, 0.9, seed=1)
    sizes = np.array([j.request.cpus for j in wl.jobs])
    runtimes = np.array([j.runtime_s for j in wl.jobs])
    assert wl.name == "hpc" and all(n.capacity.gpus == 0 for n in wl.nodes)
    assert 0.20 < np.mean(sizes == 1) < 0.28  # serial jobs: 24 %
    par = sizes[sizes > 1]
    assert np.mean(np.log2(par) % 1 == 0) > 0.7  # powers of two preferred
    assert sizes.max() <= 256
    # the hyper-gamma: a short mode near e^4 s and a long one near e^9.4 s
    logs = np.log(runtimes)
    assert np.mean(logs < 6.5) > 0.3 and np.mean(logs > 8) > 0.3
    # larger jobs run longer
    assert np.median(runtimes[sizes >= 64]) > 5 * np.median(runtimes[sizes == 1])
    assert wl.info["offered_load"] == pytest.approx(0.9, rel=0.15)
    again = hpc(4000, 0.9, seed=1)
    assert [j.submit_s for j in again.jobs] == [j.submit_s for j in wl.jobs]


def test_lab_long_mixes_multi_day_trainings_with_short_debugging() -> None:
    wl = lab_mix(1000, 0.9, seed=2, long_jobs=True)
    kinds = {j.kind for j in wl.jobs}
    assert wl.name == "lab-long" and {"train-long", "debug"} <= kinds
    long_runs = [j.runtime_s for j in wl.jobs if j.kind == "train-long"]
    debug = [j.runtime_s for j in wl.jobs if j.kind == "debug"]
    assert min(long_runs) >= 43200 and np.median(long_runs) > 86400
    assert max(debug) <= 1800 and len(debug) > len(long_runs)


def test_trace_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Spreadsheets write UTF-8 with a BOM; the first column's name must still be found."""
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + PODS.read_bytes())
    assert len(load_trace(csv_path)) == len(load_trace(PODS))
    swf_path = tmp_path / "bom.swf"
    swf_path.write_bytes(b"\xef\xbb\xbf" + TINY_SWF.read_bytes())
    assert load_trace(swf_path) == load_swf(TINY_SWF)
