"""`dqn-regime` trained on whole-workload labels (`--labels whole`, issue 17): per training
workload the best of the starting network and each rule followed whole, its picks the labels."""

from __future__ import annotations

import json

import pytest

from scheduler.dqn_regime_core import (
    INPUTS_V2,
    RULES,
    WEIGHTS_V2,
    RegimeNet,
    RegimePolicy,
    base_chooser,
    load_regime,
)
from scheduler.dqn_regime_train import (
    KEEP,
    collect_whole,
    family_choice,
    main,
    whole_choice,
    whole_scores,
)
from scheduler.dqn_rollout_core import BASE_WEIGHTS
from scheduler.environment import run_policy
from scheduler.policy import load_weights
from scheduler.workloads import deeprm


def test_a_rule_is_chosen_only_when_it_beats_the_network_by_the_margin():
    scores = {KEEP: 10.0, "base": 10.5, "alt": 9.9, "dense": 9.85, "wfp3": 12.0, "f1": 11.0}
    assert whole_choice(scores, 0.02) == KEEP  # dense is 1.5 % better: not enough
    assert whole_choice(scores, 0.01) == "dense"
    assert whole_choice({**scores, "alt": 7.0}, 0.02) == "alt"


def test_a_family_takes_the_rule_best_over_its_workloads():
    """Per workload hpc's winner changes (base, then alt), while dense is a little better on
    both: the family takes dense. Where dense is no better, neither base nor alt beats the
    network over the family (their geometric mean is 1), so hpc keeps it; deeprm keeps dense."""
    scores = {
        0: {KEEP: 10.0, "base": 5.0, "alt": 20.0, "dense": 8.0},
        1: {KEEP: 10.0, "base": 20.0, "alt": 5.0, "dense": 9.0},
        2: {KEEP: 4.0, "base": 4.0, "alt": 4.0, "dense": 3.0},
        3: {KEEP: 6.0, "base": 6.5, "alt": 6.0, "dense": 5.7},
    }
    families = {0: "hpc", 1: "hpc", 2: "deeprm", 3: "deeprm"}
    per_workload = {i: whole_choice(s, 0.02) for i, s in scores.items()}
    assert per_workload == {0: "base", 1: "alt", 2: "dense", 3: "dense"}
    assert family_choice(scores, families, 0.02) == {0: "dense", 1: "dense", 2: "dense",
                                                      3: "dense"}  # fmt: skip
    scores[0]["dense"] = scores[1]["dense"] = 10.0
    assert family_choice(scores, families, 0.02) == {0: KEEP, 1: KEEP, 2: "dense", 3: "dense"}


def _episode(label: str, wl=None) -> tuple[list, float]:
    keep, _ = load_regime(WEIGHTS_V2)
    shipped, _, _ = load_weights(BASE_WEIGHTS)
    return collect_whole(wl or deeprm(80, 1.0, 3), label, keep, None, base_chooser(shipped))


def test_the_labels_are_the_chosen_rules_picks():
    dense = INPUTS_V2.index("dense_choice")
    got, _ = _episode("dense")
    assert got and all(it.x[it.label, dense] == 1.0 for it in got)
    assert any(it.improved for it in got)  # somewhere dense differs from the network


def test_keeping_the_network_labels_its_own_choices():
    got, _ = _episode(KEEP)
    assert got and not any(it.improved for it in got)


def test_the_labelling_episode_runs_the_label_as_the_simulator_scored_it():
    """Iteration 0 follows the label in the training environment: the same run as the
    simulator's of that rule or of the network (`whole_scores`), so a label is the picks of the
    very run that won."""
    wl = deeprm(60, 1.0, 4)
    scores = whole_scores(wl, WEIGHTS_V2)
    assert list(scores) == [KEEP, *RULES]
    assert len(set(scores.values())) > 1
    for label in (KEEP, "dense", "alt", "wfp3"):
        assert _episode(label, wl)[1] == pytest.approx(scores[label], rel=1e-9), label


def test_tiny_whole_label_training_run(tmp_path, monkeypatch):
    out = tmp_path / "reg3.npz"
    main(["--version", "2", "--labels", "whole", "--workloads", "3", "--first", "1", "--jobs",
          "60", "--epochs", "1", "--iterations", "2", "--out", str(out)])  # fmt: skip
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["labels"] == "whole" and meta["rules"] == [KEEP, *RULES]
    first = [h for h in meta["history"] if h["iteration"] == 0]
    assert [h["family"] for h in first] == ["lab", "lab-long", "hpc"]
    assert all(set(h["scores"]) == {KEEP, *RULES} and h["chosen"] in h["scores"] for h in first)
    assert all(h["labels"] > 0 for h in meta["history"])
    pol = RegimePolicy(out)
    assert isinstance(pol.net, RegimeNet) and pol.net.features == INPUTS_V2
    assert len(run_policy(pol, deeprm(30, 0.9, 2)).finished) == 30
    # a second run grouped by family reuses the first's scores: no workload simulated again
    import scheduler.dqn_regime_train as trainer

    def simulated(*_a: object) -> None:
        raise AssertionError("a workload was simulated again")

    monkeypatch.setattr(trainer, "whole_scores", simulated)
    again = tmp_path / "fam.npz"
    main(["--version", "2", "--labels", "whole", "--group", "family", "--scores",
          str(out.with_suffix(".json")), "--workloads", "3", "--first", "1", "--jobs", "60",
          "--epochs", "1", "--out", str(again)])  # fmt: skip
    fam = json.loads(again.with_suffix(".json").read_text())
    assert fam["group"] == "family"
    assert [h["scores"] for h in fam["history"]] == [h["scores"] for h in first]


def test_whole_labels_need_the_second_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--labels", "whole", "--out", "w.npz"])
    assert exc.value.code == 2 and "--version 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # run whole: dqn-regime weights, not dqn-self's
        main(["--version", "2", "--labels", "whole", "--start", str(BASE_WEIGHTS), "--out",
              "w.npz"])  # fmt: skip
    assert exc.value.code == 2 and "--start" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--version", "2", "--labels", "whole", "--scores", str(BASE_WEIGHTS), "--out",
              "w.npz"])  # fmt: skip
    assert exc.value.code == 2 and "--scores" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # the whole-label options alone mean nothing
        main(["--group", "family", "--out", "w.npz"])
    assert exc.value.code == 2 and "--labels whole" in capsys.readouterr().err


@pytest.mark.parametrize(
    "history",
    [
        [{"workload": 0, "scores": {KEEP: 1.0}}],  # rules missing
        [{"workload": 0, "scores": {KEEP: 1.0, **dict.fromkeys(RULES, "x")}}],
        [{"workload": 0, "scores": {KEEP: 1.0, **dict.fromkeys(RULES, -1.0)}}],
        [],
    ],
)
def test_scores_from_an_earlier_run_are_checked(tmp_path, capsys, history):
    bad = tmp_path / "run.json"
    bad.write_text(json.dumps({"history": history}))
    with pytest.raises(SystemExit) as exc:
        main(["--version", "2", "--labels", "whole", "--scores", str(bad), "--out",
              str(tmp_path / "w.npz")])  # fmt: skip
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--scores" in err and "Traceback" not in err
    good = {"history": [{"workload": 0, "scores": {KEEP: 1.0, **dict.fromkeys(RULES, 2.0)}}]}
    bad.write_text(json.dumps({**good, "jobs": 300}))
    with pytest.raises(SystemExit) as exc:
        main(["--version", "2", "--labels", "whole", "--scores", str(bad), "--jobs", "1000",
              "--out", str(tmp_path / "w.npz")])  # fmt: skip
    assert exc.value.code == 2 and "300-job" in capsys.readouterr().err


def test_the_anchor_holds_the_network_to_its_start_where_the_label_is_keep():
    """Labels that pull away from the starting network (the dense rule's picks), marked as kept
    workloads: with the anchor the scores stay nearer the start's, and so do the picks."""
    import numpy as np
    import torch

    from scheduler.dqn_regime_train import fit_anchored
    from scheduler.dqn_rollout_train import make_net
    from scheduler.mlp import read_npz

    data, _ = _episode("dense")
    start, _ = read_npz(WEIGHTS_V2)
    x = [torch.as_tensor(it.x) for it in data]

    def scores(net) -> list:
        with torch.no_grad():
            return [net(v).squeeze(-1).numpy() for v in x]

    ref = scores(make_net(start))
    out = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        net = make_net(start)
        fit_anchored(net, data, start, [True] * len(data), weight, epochs=3, lr=1e-2,
                     rng=np.random.default_rng(0))  # fmt: skip
        got = scores(net)
        drift = np.mean(
            [np.mean(((g - g.mean()) - (r - r.mean())) ** 2) for g, r in zip(got, ref, strict=True)]
        )
        same = np.mean(
            [int(np.argmax(g)) == int(np.argmax(r)) for g, r in zip(got, ref, strict=True)]
        )
        out[weight] = (drift, same)
    assert out[10.0][0] < out[0.0][0] / 4
    assert out[10.0][1] > out[0.0][1]


def test_version_three_runs_version_two_on_a_cluster_without_gpus(tmp_path):
    """`dqn_regime3.npz` names `dqn_regime2.npz` for clusters without GPUs (`cpu_only`): there
    it decides as version 2 to the last placement; with GPUs as its own network."""
    from scheduler.bench import make_workload
    from scheduler.dqn_regime_core import RegimeWeightsError, save_regime
    from scheduler.mlp import read_npz

    v3 = WEIGHTS_V2.with_name("dqn_regime3.npz")
    layers, meta = read_npz(v3)
    assert meta["cpu_only"] == "dqn_regime2.npz"
    alone = tmp_path / "alone.npz"  # the same network without the CPU one
    save_regime(alone, layers, {k: v for k, v in meta.items() if k != "cpu_only"})

    def starts(weights, wl) -> list:
        return sorted((r.id, r.start_s) for r in run_policy(RegimePolicy(weights), wl).finished)

    hpc = make_workload("hpc", 5, jobs=120, load=0.9)
    assert not any(n.capacity.gpus for n in hpc.nodes)
    assert starts(v3, hpc) == starts(WEIGHTS_V2, hpc)
    gpu = deeprm(120, 1.0, 5)
    assert starts(v3, gpu) == starts(alone, gpu) != starts(WEIGHTS_V2, gpu)
    for name, words in (
        ("nonexistent.npz", "CPU-only clusters: .*no such file"),
        ("../dqn_regime2.npz", "not a file name beside it"),
        ("/etc/passwd", "not a file name beside it"),
        ("dqn_regime.npz", "reads other inputs"),  # version 1: no heuristics' picks
    ):
        if name == "dqn_regime.npz":
            (tmp_path / name).write_bytes(WEIGHTS_V2.with_name(name).read_bytes())
        save_regime(tmp_path / "bad.npz", layers, {**meta, "cpu_only": name})
        with pytest.raises(RegimeWeightsError, match=words):
            RegimePolicy(tmp_path / "bad.npz")


def test_the_network_follows_the_hardware_not_a_hosts_outage():
    """A GPU cluster whose GPU hosts are all down keeps the GPU network (nothing can start on
    them anyway); a cluster of CPU hosts alone takes the CPU one."""
    import dataclasses

    from scheduler.model import NODE_DOWN
    from tests.scheduler.helpers import job, node, view

    pol = RegimePolicy(WEIGHTS_V2.with_name("dqn_regime3.npz"))
    assert pol.cpu_net is not None and pol.gpu_net is not pol.cpu_net
    down = dataclasses.replace(node("g1", gpus=8), state=NODE_DOWN)
    pol.decide(view(down, node("c1", gpus=0)), [job("a")], 0.0)
    assert pol.net is pol.gpu_net
    pol.decide(view(node("c1", gpus=0), node("c2", gpus=0)), [job("b")], 10.0)
    assert pol.net is pol.cpu_net


def test_the_per_seed_oracle_is_the_best_choice_made_after_the_fact():
    """`bench/dqn_fresh_seeds.py --per-seed-table`'s last line: each policy over the best
    heuristic by mean, and the per-seed best of the heuristics and of every policy."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "bench" / "dqn_fresh_seeds.py"
    spec = importlib.util.spec_from_file_location("dqn_fresh_seeds", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ps = {  # two seeds: [avg bounded slowdown, p95, utilization]
        "sjf": [[4.0, 0, 0], [2.0, 0, 0]],
        "f1": [[2.0, 0, 0], [6.0, 0, 0]],
        "base": [[3.0, 0, 0], [3.0, 0, 0]],
        "net": [[5.0, 0, 0], [1.0, 0, 0]],
    }
    row = {"per_seed": ps, "heur": {"sjf": [3.0], "f1": [4.0]}, "best": "sjf"}
    line = bench.oracle_line(row)
    assert "base 1.000, net 1.000;" in line
    assert "per-seed best heuristic 0.667" in line  # (2 + 2) / 2 over 3
    assert "per-seed best of every policy 0.500" in line  # (2 + 1) / 2 over 3
