# ruff: noqa: UP031 - kept runnable by the old python3 (3.7+) a login node may have
# lepton's Slurm helper: stdlib only, sent to `python3 -` over stdin on the login or submit node;
# never installed there. One exec runs a whole batch (every submission of a tick, or the tick's
# one squeue plus the end files of jobs squeue no longer shows), so a tick costs one round trip.
#
# The sender appends `_lepton_slurm_main("<base64 JSON request>")`: the request is data, never
# spliced into a shell; Slurm commands run as argv lists without a shell. The reply is one line:
# MARKER followed by JSON, so whatever a login script prints before it is ignored.
import base64
import json
import os
import subprocess
import sys

MARKER = "@@LEPTON-SLURM-REPLY@@"
LOG_MAX = 1 << 20


def _env(extra):
    """The environment for Slurm commands: lepton's own variables, the agent socket and any
    SBATCH_/SLURM_ input variables of the caller dropped (sbatch exports this environment
    to the job), then the target's (SLURM_CONF, SLURM_TIME_FORMAT)."""
    env = {}
    for k, v in os.environ.items():
        if k.startswith("LEPTON_") or k.startswith("SBATCH_") or k == "SSH_AUTH_SOCK":
            continue
        if k.startswith("SLURM_") and k != "SLURM_CONF":
            continue
        env[k] = v
    env.update(extra or {})
    return env


def _run(argv, env, ran, stdin=None, timeout=60, label=None):
    ran.append(label or argv[0])
    try:
        p = subprocess.run(
            argv, input=(stdin or "").encode(), capture_output=True,
            env=env, timeout=timeout,
        )  # fmt: skip
    except OSError as exc:
        return {"rc": 127, "out": "", "err": "%s: %s" % (argv[0], exc)}
    except subprocess.TimeoutExpired:
        return {"rc": 124, "out": "", "err": "%s did not answer within %ss" % (argv[0], timeout)}
    return {
        "rc": p.returncode,
        "out": p.stdout.decode("utf-8", "replace"),
        "err": p.stderr.decode("utf-8", "replace"),
    }


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def _files(d):
    """What an attempt directory says about a job squeue does not show."""
    if not os.path.isdir(d):
        return {"exists": False}
    out = {"exists": True}
    sid = _read(os.path.join(d, "slurm_job_id"))
    if sid and sid.strip().isdigit():
        out["slurm_id"] = sid.strip()
    end = os.path.join(d, "exit_code")
    code = _read(end)
    if code is not None and code.strip().lstrip("-").isdigit():
        out["exit_code"] = int(code.strip())
        out["ended_at"] = os.stat(end).st_mtime
    started = _read(os.path.join(d, "started_at"))
    if started and started.strip().isdigit():
        out["started_at"] = float(started.strip())
    return out


def op_resolve(req, ran):
    """`path` with `~` expanded here."""
    return {"path": os.path.expanduser(req["path"])}


def op_check_dir(req, ran):
    """Whether attempt directories can be made under `path` (made if missing)."""
    path = os.path.expanduser(req["path"])
    try:
        os.makedirs(path, 0o700, exist_ok=True)
        probe = os.path.join(path, ".lepton-write-check")
        _write_atomic(probe, "ok\n")
        os.unlink(probe)
    except OSError as exc:
        return {"path": path, "error": str(exc)}
    st = os.statvfs(path)
    return {"path": path, "free_mb": st.f_bavail * st.f_frsize // (1 << 20)}


def op_run(req, ran):
    """Run each command (an argv, no shell); rc, out and err of each."""
    env = _env(req.get("env"))
    return [_run(c["argv"], env, ran, c.get("stdin"), req.get("timeout", 60))
            for c in req["commands"]]  # fmt: skip


def op_submit(req, ran):
    """mkdir, write the script, sbatch: per item. With `guard`, first look for each attempt
    (one squeue by name, and its directory): one that Slurm already has is not submitted again."""
    env = _env(req.get("env"))
    found = {}
    if req.get("guard"):
        names = ",".join(i["name"] for i in req["items"])
        r = _run(["squeue", "--me", "--noheader", "--states=all", "--format=%i|%j",
                  "--name=" + names], env, ran)  # fmt: skip
        if r["rc"] != 0:
            raise RuntimeError("squeue failed: " + (r["err"].strip() or "exit %d" % r["rc"]))
        for line in r["out"].splitlines():
            sid, _, name = line.strip().partition("|")
            if sid.isdigit():
                found[name] = sid
    results = []
    for item in req["items"]:
        d = item["dir"]
        if req.get("guard") and item["name"] not in found:
            files = _files(d)
            if files.get("slurm_id"):
                found[item["name"]] = files["slurm_id"]
        if item["name"] in found:
            results.append({"slurm_id": found[item["name"]], "existing": True})
            continue
        try:
            os.makedirs(d, 0o700, exist_ok=True)
            _write_atomic(os.path.join(d, "job.sh"), item["script"])
        except OSError as exc:
            results.append({"error": "cannot write %s: %s" % (d, exc)})
            continue
        r = _run(item["argv"], env, ran)
        sid = r["out"].strip().split(";")[0].strip() if r["rc"] == 0 else ""
        if sid.isdigit():
            try:
                _write_atomic(os.path.join(d, "slurm_job_id"), sid + "\n")
            except OSError:
                pass  # squeue still finds it by name
        results.append(r)
    return results


def op_poll(req, ran):
    """The tick: ONE status command for all of the user's jobs (squeue, or sacct where
    accounting runs), then, only if an asked attempt is missing from it and a `fallback` is
    given, ONE squeue (a job sbatch took a moment ago may not have reached the accounting
    database yet); if one known by its Slurm id is in neither and a `lookup` is given, ONE
    sacct for those ids (a job never eligible has no time the window selects by); the files of asked attempts neither showed; the partition's nodes (sinfo); and, given
    `pending`, the partition's pending jobs (one squeue, whoever's: `squeue:pending`)."""
    env = _env(req.get("env"))
    r = _run(req["status"], env, ran)
    if r["rc"] != 0:
        raise RuntimeError("%s failed: %s" % (req["status"][0], r["err"].strip() or r["rc"]))
    shown = _names(r["out"])
    missing = [t for t, item in req["attempts"].items() if item["name"] not in shown]
    fallback = None
    if missing and req.get("fallback"):
        f = _run(req["fallback"], env, ran)
        if f["rc"] != 0:
            raise RuntimeError("squeue failed: " + (f["err"].strip() or "exit %d" % f["rc"]))
        fallback = f["out"]
        shown |= _names(fallback)
    lookup = None
    ids = [
        str(item["slurm_id"])
        for item in req["attempts"].values()
        if item["name"] not in shown and str(item.get("slurm_id") or "").isdigit()
    ]
    if ids and req.get("lookup"):
        # known to Slurm by id but in neither list: sacct by id (never eligible, then ended)
        f = _run(req["lookup"] + ["--jobs=" + ",".join(ids)], env, ran)
        if f["rc"] != 0:
            raise RuntimeError("sacct failed: " + (f["err"].strip() or "exit %d" % f["rc"]))
        lookup = f["out"]
        shown |= _names(lookup)
    files = {}
    for token, item in req["attempts"].items():
        # no dir: another user's attempt (lab mode), its files read through their login
        if item["name"] not in shown and item.get("dir"):
            files[token] = _files(item["dir"])
    nodes = _run(req["nodes"], env, ran) if req.get("nodes") else None
    # the partition's own queue (other users' pending jobs), counted apart from the status
    pending = _run(req["pending"], env, ran, label="squeue:pending") if req.get("pending") else None
    return {
        "pending": pending,
        "status": r["out"],
        "fallback": fallback,
        "lookup": lookup,
        "files": files,
        "nodes": nodes,
    }


def op_files(req, ran):
    """What each attempt directory says (`dirs`: token -> directory): the end files of jobs
    Slurm no longer shows, read as the user who owns them."""
    return {token: _files(d) for token, d in req["dirs"].items()}


def _names(out):
    """The job names in `|`-separated output whose last field is the name."""
    return {line.rstrip().rstrip("|").rsplit("|", 1)[-1].strip() for line in out.splitlines()}


def op_read(req, ran):
    """Up to `max` bytes of a file from `offset` (a job's log)."""
    try:
        with open(req["path"], "rb") as f:
            f.seek(req["offset"])
            data = f.read(min(req.get("max", LOG_MAX), LOG_MAX))
    except FileNotFoundError:
        data = b""
    return {"data": base64.b64encode(data).decode("ascii"), "offset": req["offset"] + len(data)}


OPS = {"resolve": op_resolve, "run": op_run, "submit": op_submit, "poll": op_poll,
       "read": op_read, "check_dir": op_check_dir, "files": op_files}  # fmt: skip


def _lepton_slurm_main(encoded):
    req = json.loads(base64.b64decode(encoded).decode("utf-8"))
    ran = []
    try:
        reply = {"ok": True, "result": OPS[req["op"]](req, ran), "ran": ran}
    except Exception as exc:  # reported to the caller as a RemoteError
        reply = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc), "ran": ran}
    sys.stdout.write("\n" + MARKER + json.dumps(reply) + "\n")
    sys.stdout.flush()
