"""CLI benchmark: whole-command wall times, as a user's shell sees them (hyperfine-like).

    python bench/cli.py                  # every command, 15 runs each (after 2 warm-ups)
    python bench/cli.py --runs 30 --only queue

Each command runs in a fresh `python3 -m lepton_tui` process on a state directory whose ledger
holds 100,000 jobs (5 % of them not ended), output into a pipe. Besides the median and min wall
time of each command it prints a bare `python3 -c pass` (the interpreter's own start on this
machine, site hooks included), and which heavy packages each command imported. Bytecode is
cached (in a temporary PYTHONPYCACHEPREFIX) as an installed package's would be, even where
PYTHONDONTWRITEBYTECODE is set: compiling every module on every run is not what users pay.
`--code DIR` runs another checkout's code (e.g. main's, for a before/after) on the same ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEAVY = ("numpy", "scipy", "textual", "rich", "sqlite_utils", "paramiko", "torch")


def fill(home: Path, count: int) -> None:
    """A ledger of `count` jobs (the same mix as bench/ledger.py), written in one transaction."""
    sys.path.insert(0, str(ROOT / "bench"))
    from ledger import fill_jobs  # bench/ledger.py

    fill_jobs(home, count).close()


def run_times(
    argv: list[str], runs: int, env: dict[str, str], cwd: Path
) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (user + system, ms) of `runs` runs of `argv` in `cwd`, after two
    unmeasured warm-ups. The CPU time is what a loaded machine does not inflate."""
    times, cpus = [], []
    for i in range(runs + 2):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        res = subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd
        )
        took = (time.perf_counter() - start) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise SystemExit(f"{argv} failed: {res.stderr.decode()[-500:]}")
        if i >= 2:
            times.append(took)
            used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            cpus.append(used * 1000)
    return times, cpus


def imported(args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """The heavy packages a command imports (run in-process under `runpy`, then sys.modules)."""
    code = (
        "import sys, json, runpy, atexit\n"
        f"atexit.register(lambda: sys.__stderr__.write(json.dumps(sorted({{m.split('.')[0] "
        f"for m in sys.modules}} & set({list(HEAVY)!r}))) + '\\n'))\n"
        f"sys.argv = ['lepton-tui', *{args!r}]\n"
        "runpy.run_module('lepton_tui', run_name='__main__')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd,
    )  # fmt: skip
    last = res.stderr.decode().strip().splitlines()[-1:]
    return json.loads(last[0]) if last and last[0].startswith("[") else ["?"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--only", default=None, help="Only the commands whose name contains this.")
    ap.add_argument("--code", type=Path, default=ROOT, help="The checkout whose code runs.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        fill(home, args.jobs)
        env = dict(os.environ, PYTHONPATH=str(args.code.resolve()), LEPTON_HOME=str(home),
                   PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))  # fmt: skip
        for var in ("COLUMNS", "PYTHONDONTWRITEBYTECODE", "PAGER", "LEPTON_PAGER"):
            env.pop(var, None)
        py = [sys.executable]
        cmds: list[tuple[str, list[str]]] = [
            ("python3 -c pass (interpreter start)", [*py, "-c", "pass"]),
            ("lepton-tui --version", [*py, "-m", "lepton_tui", "--version"]),
            ("lepton-tui queue", [*py, "-m", "lepton_tui", "queue"]),
            ("lepton-tui queue --json", [*py, "-m", "lepton_tui", "queue", "--json"]),
            ("lepton-tui queue --limit 50", [*py, "-m", "lepton_tui", "queue", "--limit", "50"]),
            ("lepton-tui queue --all --json --limit 100000",
             [*py, "-m", "lepton_tui", "queue", "--all", "--json", "--limit", "100000"]),
            ("lepton-tui show 1", [*py, "-m", "lepton_tui", "show", "1"]),
            ("lepton-tui submit -- true", [*py, "-m", "lepton_tui", "submit", "--", "true"]),
        ]  # fmt: skip
        print(f"code: {args.code.resolve()}; {args.jobs:,} jobs in the ledger; {args.runs} runs "
              f"each; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")  # fmt: skip
        print("| command | wall ms, median | wall ms, min | CPU ms, median | heavy imports |")
        print("|---|---|---|---|---|")
        for name, argv in cmds:
            if args.only and args.only not in name:
                continue
            code = args.code.resolve()  # `-m` reads the current directory first
            times, cpus = run_times(argv, args.runs, env, code)
            heavy = "-" if argv[1] == "-c" else ", ".join(imported(argv[3:], env, code)) or "none"
            print(f"| {name} | {statistics.median(times):,.0f} | {min(times):,.0f} | "
                  f"{statistics.median(cpus):,.0f} | {heavy} |")  # fmt: skip


if __name__ == "__main__":
    main()
