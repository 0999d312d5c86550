# ruff: noqa: UP031 - kept runnable by the old python3 a host may have
# lepton host agent: stdlib only, sent to `python3 -` over stdin; never installed on the host.
#
# One-shot: the sender appends one line, `_lepton_main("<base64 JSON request>")`, so the request
# travels as data inside the program text, never through a shell. The reply is one line on
# stdout: MARKER followed by JSON, so whatever a login script prints before it is ignored.
# Persistent: the sender appends `_lepton_serve("<version>")` instead and starts the program with
# a small loader (inventory/agent_session.py); it then answers one JSON request per stdin line
# with one MARKER line each, until its stdin closes (the SSH channel or connection went away).
# Kept compatible with old python3 syntax so that preflight can say "too old" instead of failing.
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time

MARKER = "@@LEPTON-REPLY@@"
# a dir without a wrapper record for this long is lost (the launch says how long: the
# dispatcher's host grace; this is for a launch that does not)
STARTING_TIMEOUT_S = 120.0

GPU_FIELDS = "index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"
APP_FIELDS = "gpu_uuid,pid,used_memory"


# -- small helpers ---------------------------------------------------------------------------
def read_text(path, default=None, strict=False):
    """A file's text, or `default` when it cannot be read. `strict` (an attempt's own files):
    only a file that does not exist (or is not text) gives `default`; any other error
    (permissions, a failing or stale network filesystem) raises, since "cannot read" is not
    "absent" and a job must not be reported gone because its files could not be read."""
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return default
    except OSError:
        if strict:
            raise
        return default


def read_json(path, strict=False):
    """A JSON file's value, or None when missing or not JSON (see `read_text` for `strict`)."""
    text = read_text(path, strict=strict)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def write_atomic(path, data):
    """Write `data` to a temporary file and rename it over `path`."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def boot_id():
    """This boot's id ("" where the kernel has none)."""
    return (read_text("/proc/sys/kernel/random/boot_id") or "").strip()


def proc_stat(pid):
    """(state, session id, start time, parent pid) of a process, or None."""
    try:
        with open("/proc/%d/stat" % int(pid), "rb") as f:
            data = f.read()
    except (OSError, ValueError):
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[3]), int(fields[19]), int(fields[1])


def alive(pid, start_time, boot):
    """True if `pid` is the same live (non-zombie) process it was when recorded."""
    if not pid or boot != boot_id():
        return False
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X") and st[2] == start_time


def jobs_dir(root):
    """The directory holding the attempt directories under `root`."""
    return os.path.join(os.path.expanduser(root), "jobs")


def find_attempt(root, token, names=None):
    """The attempt directory `<job>-<token>` for `token`, or None (`names`: the jobs directory's
    listing, when the caller has it already).

    Only a jobs directory that does not exist means "no such attempt"; any other error reading
    it (a hung or failing network filesystem, permissions) raises: the caller must not take
    running jobs for gone (`statuses` reports them "unreadable", fencing scans /proc)."""
    jd = jobs_dir(root)
    if names is None:
        try:
            names = os.listdir(jd)
        except (FileNotFoundError, NotADirectoryError):
            return None
    suffix = "-" + token
    for name in names:
        if name.endswith(suffix) and name[: -len(suffix)].isdigit():
            return os.path.join(jd, name)
    return None


def parse_number(text):
    """A number from nvidia-smi CSV, or None for [N/A], [Not Supported], N/A, empty."""
    text = text.strip()
    if not text or text.startswith("[") or text.upper() in ("N/A", "NA"):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else value


def parse_gpu_csv(text):
    """Rows of `nvidia-smi --query-gpu=GPU_FIELDS --format=csv,noheader,nounits` as dicts."""
    gpus = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.lower().startswith("index"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 8 or not parts[0].isdigit():
            continue  # an error line ("No devices were found") or a stray message
        tail = parts[-5:]
        gpus.append(
            {
                "index": int(parts[0]),
                "uuid": parts[1],
                "name": ", ".join(parts[2:-5]),
                "util_percent": parse_number(tail[0]),
                "mem_used_mb": parse_number(tail[1]),
                "mem_total_mb": parse_number(tail[2]),
                "temperature_c": parse_number(tail[3]),
                "power_w": parse_number(tail[4]),
                "processes": [],
                "fake": False,
            }
        )
    return gpus


def parse_apps_csv(text):
    """Rows of `--query-compute-apps=gpu_uuid,pid,used_memory`: (gpu uuid, pid, MiB or None)."""
    apps = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        apps.append((parts[0], int(parts[1]), parse_number(parts[2])))
    return apps


def attach_apps(gpus, apps):
    """Put each compute process on its GPU (a MIG instance's process goes to its parent GPU)."""
    by_uuid = dict((g["uuid"], g) for g in gpus)
    for uuid, pid, mem in apps:
        gpu = by_uuid.get(uuid)
        if gpu is None and len(gpus) == 1:
            gpu = gpus[0]
        if gpu is not None:
            gpu["processes"].append([pid, mem])
    return gpus


def run_quiet(argv, timeout):
    """(rc, stdout, stderr) of `argv`, killed after `timeout` seconds (rc 124)."""
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        return 127, "", str(exc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return 124, "", f"timed out after {timeout}s"
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def query_gpus(timeout=10.0, processes=True):
    """(gpus, error): no nvidia-smi or no driver gives ([], reason), never an exception.

    One `nvidia-smi` per call, two with `processes` (each GPU's compute processes: nvidia-smi
    answers one kind of query per run). The dispatcher's polls record no processes and ask
    without them; `hosts probe` shows them. (`nvidia-smi -q -x` answers both in one run, but
    it gathers every section, clocks and ECC pages included, and costs the host several times
    the two CSV queries.)"""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], None
    rc, out, err = run_quiet(
        [smi, "--query-gpu=" + GPU_FIELDS, "--format=csv,noheader,nounits"], timeout
    )
    if rc != 0:
        return [], (out.strip() or err.strip() or "nvidia-smi exit %d" % rc).splitlines()[0]
    gpus = parse_gpu_csv(out)
    if not processes or not gpus:
        return gpus, None
    rc, out, err = run_quiet(
        [smi, "--query-compute-apps=" + APP_FIELDS, "--format=csv,noheader,nounits"], timeout
    )
    if rc == 0:
        attach_apps(gpus, parse_apps_csv(out))
    return gpus, None


def fake_gpus(host, n):
    """`n` synthetic GPUs, flagged fake, for hosts with a gpus_override."""
    return [
        {
            "index": i,
            "uuid": "fake-%s-%d" % (host, i),
            "name": "fake GPU",
            "util_percent": None,
            "mem_used_mb": None,
            "mem_total_mb": None,
            "temperature_c": None,
            "power_w": None,
            "processes": [],
            "fake": True,
        }
        for i in range(n)
    ]


def cpu_times():
    """(total, idle) jiffies from the first line of /proc/stat."""
    line = (read_text("/proc/stat") or "cpu 0 0 0 0").splitlines()[0].split()
    values = [int(v) for v in line[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]), idle


def cpu_percent(root):
    """Busy percent since the last probe of this root (state kept there); first time, over 0.1 s."""
    state_path = os.path.join(os.path.expanduser(root), "probe_state.json")
    total, idle = cpu_times()
    prev = read_json(state_path)
    boot = boot_id()
    if not prev or prev.get("boot_id") != boot or total - prev.get("total", 0) <= 0:
        time.sleep(0.1)
        prev = {"total": total, "idle": idle}
        total, idle = cpu_times()
    try:
        os.makedirs(os.path.dirname(state_path), exist_ok=True)
        write_atomic(
            state_path, json.dumps({"total": total, "idle": idle, "boot_id": boot}).encode()
        )
    except OSError:
        pass
    dt = total - prev["total"]
    if dt <= 0:
        return 0.0
    return round(100.0 * (1.0 - (idle - prev["idle"]) / float(dt)), 1)


def meminfo():
    """(total, used) memory in MiB; used is total minus MemAvailable."""
    info = {}
    for line in (read_text("/proc/meminfo") or "").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            info[parts[0].rstrip(":")] = int(parts[1])
    total = info.get("MemTotal", 0) // 1024
    avail = info.get("MemAvailable", info.get("MemFree", 0)) // 1024
    return total, total - avail


def disk_free_mb(path):
    """Free MiB for an unprivileged user on the filesystem holding `path`."""
    path = os.path.expanduser(path)
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        st = os.statvfs(path or "/")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize // (1024 * 1024)


# -- attempts --------------------------------------------------------------------------------
def status_of(d, token):
    """The state of one attempt directory (see inventory.supervisor.AttemptStatus)."""
    st = {
        "token": token,
        "state": "missing",
        "exit_code": None,
        "started_at": None,
        "ended_at": None,
        "pid": None,
        "reason": None,
        "timed_out": False,
        "cancelled": False,
    }
    if d is None or not os.path.isdir(d):
        return st
    info = read_json(os.path.join(d, "wrapper.json"), strict=True)
    running = bool(info) and alive(info.get("pid"), info.get("start_time"), info.get("boot_id"))
    # exit_code is read after the liveness check: a wrapper that ends in between has written it
    code_text = read_text(os.path.join(d, "exit_code"), strict=True)
    if info:
        st["pid"] = info.get("job_pid")
        st["started_at"] = info.get("started_at")
    if code_text is not None and code_text.strip().lstrip("-").isdigit():
        end = read_json(os.path.join(d, "end.json"), strict=True) or {}
        st.update(
            state="done",
            exit_code=int(code_text.strip()),
            ended_at=end.get("ended_at"),
            reason=end.get("reason"),
            timed_out=bool(end.get("timed_out")),
            cancelled=bool(end.get("cancelled")),
        )
        if st["started_at"] is None:
            st["started_at"] = end.get("started_at")
        return st
    if running:
        st["state"] = "running"
        return st
    if info:
        st["state"] = "lost"
        if info.get("boot_id") != boot_id():
            st["reason"] = "host rebooted"
        else:
            st["reason"] = "wrapper gone without an exit code (killed, OOM killer, or crashed)"
        return st
    launch = read_json(os.path.join(d, "launch.json"), strict=True) or {}
    created = launch.get("created_at") or 0
    if launch.get("boot_id") and launch.get("boot_id") != boot_id():
        st.update(state="lost", reason="host rebooted before the job started")
    elif time.time() - created > float(launch.get("start_timeout_s") or STARTING_TIMEOUT_S):
        st.update(state="lost", reason="wrapper never started")
    else:
        st["state"] = "starting"
    return st


def safe_status(find, token):
    """status_of(find(), token), or "unreadable" with the error: one attempt whose files cannot
    be read must not fail the whole poll (and with it every job on the host)."""
    try:
        return status_of(find(), token)
    except OSError as exc:
        return {"token": token, "state": "unreadable", "reason": f"{type(exc).__name__}: {exc}"}


def statuses(root, tokens):
    """Status of each token, or of every attempt directory under root when tokens is None.
    A jobs directory that cannot be listed makes every token "unreadable" (nothing concluded);
    without tokens, it raises."""
    if tokens is None:
        out = {}
        try:
            names = sorted(os.listdir(jobs_dir(root)))
        except (FileNotFoundError, NotADirectoryError):
            names = []
        for name in names:
            job, _, token = name.partition("-")
            if job.isdigit() and token:
                d = os.path.join(jobs_dir(root), name)
                out[token] = safe_status(lambda d=d: d, token)
        return out
    try:
        jd_names = os.listdir(jobs_dir(root)) if tokens else None
    except (FileNotFoundError, NotADirectoryError):
        jd_names = []
    except OSError as exc:  # cannot be listed (EIO, ESTALE): nothing concluded about any of them
        why = f"{type(exc).__name__}: {exc}"
        return dict((t, {"token": t, "state": "unreadable", "reason": why}) for t in tokens)
    return dict((t, safe_status(lambda t=t: find_attempt(root, t, jd_names), t)) for t in tokens)


def launch_one(root, item, wrapper_source):
    """Create the attempt directory (exactly once), write its files, start its wrapper."""
    jd = jobs_dir(root)
    d = os.path.join(jd, "%d-%s" % (int(item["job_id"]), item["token"]))
    if not os.path.isdir(jd):
        os.makedirs(jd, mode=0o700)
    try:
        os.mkdir(d, 0o700)  # not makedirs: a second launch of the same attempt stops here
    except FileExistsError:
        return {"token": item["token"], "remote_dir": d, "already_launched": True}
    spec = dict(item)
    spec.pop("command", None)
    spec["created_at"] = time.time()
    spec["boot_id"] = boot_id()
    try:
        with open(os.path.join(d, "command"), "wb") as f:
            f.write(item["command"].encode("utf-8", "surrogateescape"))
        with open(os.path.join(d, "wrapper.py"), "w") as f:
            f.write(wrapper_source)
        write_atomic(os.path.join(d, "launch.json"), json.dumps(spec).encode())
    except BaseException:
        # a full disk or a quota partway: nothing was started, so leave nothing behind (a
        # half-written directory read as "wrapper never started", and the launch failure went
        # uncounted); the launch fails and is counted, and retried
        shutil.rmtree(d, ignore_errors=True)
        raise
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(d, "wrapper.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        subprocess.Popen(
            [sys.executable or "python3", "-I", "-S", os.path.join(d, "wrapper.py"), d],
            # not the caller's own LEPTON_* (a dispatcher run inside a lepton job would hand its
            # LEPTON_ATTEMPT on, and fencing that job would kill this one too)
            env=dict((k, v) for k, v in os.environ.items() if not k.startswith("LEPTON_")),
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    except OSError as exc:
        end = {"exit_code": 127, "ended_at": time.time(), "reason": f"launch failed: {exc}"}
        write_atomic(os.path.join(d, "end.json"), json.dumps(end).encode())
        write_atomic(os.path.join(d, "exit_code"), b"127\n")
    finally:
        os.close(devnull)
        os.close(log)
    return {"token": item["token"], "remote_dir": d, "already_launched": False}


def wait_started(dirs, timeout):
    """Give fresh wrappers a moment to record themselves, so status reads running at once."""
    deadline = time.time() + timeout
    pending = [d for d in dirs]
    while pending and time.time() < deadline:
        pending = [
            d
            for d in pending
            if not (
                os.path.exists(os.path.join(d, "wrapper.json"))
                or os.path.exists(os.path.join(d, "exit_code"))
            )
        ]
        if pending:
            time.sleep(0.01)


def signal_job(info, sig):
    """Send `sig` to the job's process group and every process in its session."""
    job_pid = info.get("job_pid")
    if not job_pid or info.get("boot_id") != boot_id():
        return 0
    st = proc_stat(job_pid)
    if st is not None and st[2] != info.get("job_start"):
        return 0
    hit = 0
    try:
        os.killpg(job_pid, sig)
        hit += 1
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if name.isdigit():
            ps = proc_stat(int(name))
            if ps is not None and ps[1] == job_pid and ps[0] not in ("Z", "X"):
                try:
                    os.kill(int(name), sig)
                    hit += 1
                except OSError:
                    pass
    return hit


def cancel_one(root, token, grace_s):
    """TERM one attempt's job now; a detached helper KILLs what is left after the grace."""
    d = find_attempt(root, token)
    if d is None:
        return {"found": False, "already_done": False}
    if os.path.exists(os.path.join(d, "exit_code")):
        return {"found": True, "already_done": True}
    # the wrapper checks this file after recording itself: a cancel that comes before then
    # (no wrapper.json to signal yet) is still seen
    write_atomic(os.path.join(d, "cancel_requested"), (f"{time.time():f}\n").encode())
    info = read_json(os.path.join(d, "wrapper.json"), strict=True) or {}
    signal_job(info, signal.SIGTERM)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        subprocess.Popen(
            [
                sys.executable or "python3",
                "-I",
                "-S",
                os.path.join(d, "wrapper.py"),
                "--kill-after",
                d,
                str(float(grace_s)),
            ],
            stdin=devnull,
            stdout=devnull,
            stderr=devnull,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    finally:
        os.close(devnull)
    return {"found": True, "already_done": False}


def op_cancel(req):
    """Cancel each of `tokens` (one round trip for all of a host's cancels); a token whose
    attempt cannot be reached (a read-only or full filesystem) gets an error, not the others."""
    grace = float(req.get("grace_s", 10))
    return {"results": per_token(req["tokens"], lambda t: cancel_one(req["root"], t, grace))}


def per_token(tokens, do):
    """`do(token)` for each token; one that fails gets its error (the caller asks again) and
    does not stop the others."""
    results = {}
    for t in tokens:
        try:
            results[t] = do(t)
        except Exception as exc:  # reported per token
            results[t] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def token_pids(tokens):
    """Per token, this user's processes of that attempt, found without its files: the wrapper
    by its command line (`.../jobs/<job>-<token>/wrapper.py`), the job and everything in its
    session by LEPTON_ATTEMPT=<token> in their environment. One pass over /proc for all."""
    tokens = list(tokens)
    env_of = dict((("LEPTON_ATTEMPT=" + t).encode(), t) for t in tokens)
    wrapper_of = dict((("-" + t + "/wrapper.py").encode(), t) for t in tokens)
    me, uid = os.getpid(), os.getuid()
    found = dict((t, set()) for t in tokens)
    sessions = {}
    candidates = []
    stats = {}
    stuck, wrappers = [], {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            if os.stat("/proc/%d" % pid).st_uid != uid:
                continue
        except OSError:
            continue
        st = proc_stat(pid)
        if st is None:
            continue
        stats[pid] = st  # for the session pass, even if its files below cannot be read
        if st[0] == "D":  # reading the memory of a process stuck in the kernel can hang:
            stuck.append(pid)  # known by its parent instead (below)
            continue
        argv, environ = [], []
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%d/environ" % pid, "rb") as f:  # not readable: no match
                environ = f.read().split(b"\0")
        except OSError:
            pass
        for entry in environ:
            t = env_of.get(entry)
            if t is not None:
                found[t].add(pid)
                candidates.append((st[1], pid, t))
        for arg in argv:
            for suffix, t in wrapper_of.items():
                head = arg[: -len(suffix)]
                if arg.endswith(suffix) and head.rsplit(b"/", 1)[-1].isdigit():
                    found[t].add(pid)
                    wrappers[pid] = t
    # a stuck job leader is the child of its wrapper, and leads its own session
    for pid in stuck:
        t = wrappers.get(stats[pid][3])
        if t is not None:
            found[t].add(pid)
            candidates.append((stats[pid][1], pid, t))
    # The job leads its own session (the wrapper starts it with setsid), and what it starts
    # stays in that session even with another environment. A session is the attempt's when its
    # leader carries the token, or its leader is gone; never one led by something else (a
    # user's shell that happens to hold a process with the token).
    for sid, pid, t in candidates:
        if sid == pid or sid not in stats:
            sessions[sid] = t
    for pid, st in stats.items():
        t = sessions.get(st[1])
        if t is not None and st[0] not in ("Z", "X"):
            found[t].add(pid)
    return dict((t, sorted(pids)) for t, pids in found.items())


def kill_stale_one(root, token, pids):
    """Fencing: SIGKILL an attempt's wrapper and job if they still run, by its record and by
    `pids` (from `token_pids`), which finds them where the record is missing or unreadable
    (deleted, a wrapper that died before writing it, a failing network filesystem)."""
    try:
        d = find_attempt(root, token)
    except OSError:  # the jobs directory cannot be listed: the scan below still finds them
        d = None
    killed = 0
    info = None
    if d is not None:
        # first, so a wrapper that has not recorded itself yet does not run the job; best effort:
        # a full or read-only filesystem must not stop the kill
        try:
            write_atomic(os.path.join(d, "fenced"), (f"{time.time():f}\n").encode())
        except OSError:
            pass
        try:
            info = read_json(os.path.join(d, "wrapper.json"), strict=True)
        except OSError:
            info = None
    if info:
        if alive(info.get("pid"), info.get("start_time"), info.get("boot_id")):
            try:
                os.kill(info["pid"], signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        killed += signal_job(info, signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    return {"found": d is not None, "killed": killed}


def op_kill_stale(req):
    """Fence each of `tokens` (one round trip for all of a host's stale attempts)."""
    pids = token_pids(req["tokens"])  # one pass over /proc for all of them
    return {"results": per_token(req["tokens"], lambda t: kill_stale_one(req["root"], t, pids[t]))}


def op_read_log(req):
    """Up to max_bytes of stdout or stderr from offset, base64-encoded."""
    d = find_attempt(req["root"], req["token"])
    offset = int(req["offset"])
    if d is None:
        return {"data": "", "offset": offset, "found": False}
    try:
        with open(os.path.join(d, req["stream"]), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            data = f.read(int(req["max_bytes"]))
    except OSError:
        data, size = b"", 0
    return {
        "data": base64.b64encode(data).decode(),
        "offset": offset + len(data),
        "size": size,
        "found": True,
    }


def op_probe(req):
    """CPU, memory, load, disk, GPUs and attempt states of this host (each GPU's processes
    unless the request says `processes: false`)."""
    root = req["root"]
    total, used = meminfo()
    override = req.get("gpus_override")
    if override is not None:
        gpus, gpu_error = fake_gpus(req["host"], int(override)), None
    else:
        gpus, gpu_error = query_gpus(processes=req.get("processes", True))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return {
        "host": req["host"],
        "taken_at": time.time(),
        "cpus": os.cpu_count() or 1,
        "cpu_percent": cpu_percent(root),
        "load1": round(load, 2),
        "mem_total_mb": total,
        "mem_used_mb": used,
        "disk_free_mb": disk_free_mb(root),
        "gpus": gpus,
        "gpu_error": gpu_error,
        "boot_id": boot_id(),
        "attempts": statuses(root, req.get("tokens")),
    }


def kill_user_processes(user):
    """(value or None, where it came from, linger enabled).

    The running logind is asked first (busctl); else logind's configuration files are read.
    None means not set anywhere (the build default applies: "no" on Debian and Ubuntu).
    """
    linger = os.path.exists("/var/lib/systemd/linger/" + user)
    if os.path.isdir("/run/systemd/system") and shutil.which("busctl"):
        rc, out, _ = run_quiet(
            [
                "busctl",
                "get-property",
                "org.freedesktop.login1",
                "/org/freedesktop/login1",
                "org.freedesktop.login1.Manager",
                "KillUserProcesses",
            ],
            3.0,
        )
        words = out.split()
        if rc == 0 and len(words) == 2 and words[0] == "b":
            return words[1] == "true", "running systemd-logind", linger
    value, source = None, None
    paths = ["/usr/lib/systemd/logind.conf", "/etc/systemd/logind.conf"]
    for base in (
        "/usr/lib/systemd/logind.conf.d",
        "/run/systemd/logind.conf.d",
        "/etc/systemd/logind.conf.d",
    ):
        try:
            paths.extend(
                os.path.join(base, n) for n in sorted(os.listdir(base)) if n.endswith(".conf")
            )
        except OSError:
            pass
    for path in paths:
        for line in (read_text(path) or "").splitlines():
            line = line.strip()
            if line.startswith("KillUserProcesses="):
                value = line.split("=", 1)[1].strip().lower() in ("yes", "true", "1", "on")
                source = path
    if source is None:
        source = "logind not running" if not os.path.isdir("/run/systemd/system") else "not set"
    return value, source, linger


def op_preflight(req):
    """What onboarding checks: python, GPUs, CPUs, memory, job dir, logout policy."""
    root = req["root"]
    jd = jobs_dir(root)
    writable, error = True, None
    try:
        if not os.path.isdir(jd):
            os.makedirs(jd, mode=0o700)
        probe_file = os.path.join(jd, ".lepton-write-test")
        with open(probe_file, "w") as f:
            f.write("ok")
        os.remove(probe_file)
    except OSError as exc:
        writable, error = False, str(exc)
    total, used = meminfo()
    gpus, gpu_error = query_gpus()
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    kup, kup_source, linger = kill_user_processes(user)
    return {
        "python": list(sys.version_info[:3]),
        "python_path": sys.executable,
        "nvidia_smi": shutil.which("nvidia-smi"),
        "gpus": gpus,
        "gpu_error": gpu_error,
        "cpus": os.cpu_count() or 1,
        "mem_total_mb": total,
        "mem_used_mb": used,
        "jobs_dir": jd,
        "jobs_dir_writable": writable,
        "jobs_dir_error": error,
        "disk_free_mb": disk_free_mb(jd),
        "user": user,
        "kill_user_processes": kup,
        "kill_user_processes_source": kup_source,
        "linger": linger,
        "systemd": os.path.isdir("/run/systemd/system"),
        "boot_id": boot_id(),
    }


def op_launch(req):
    """Launch every requested attempt, then wait briefly for their wrappers to record."""
    results = [launch_one(req["root"], item, req["wrapper"]) for item in req["launches"]]
    wait_started(
        [r["remote_dir"] for r in results if not r["already_launched"]],
        float(req.get("wait_s", 2.0)),
    )
    return {"launches": results}


OPS = {
    "probe": op_probe,
    "status": lambda req: {"attempts": statuses(req["root"], req.get("tokens"))},
    "launch": op_launch,
    "cancel": op_cancel,
    "kill_stale": op_kill_stale,
    "read_log": op_read_log,
    "preflight": op_preflight,
}


def _lepton_main(encoded):
    req = json.loads(base64.b64decode(encoded).decode("utf-8"))
    try:
        reply = {"ok": True, "result": OPS[req["op"]](req)}
    except Exception as exc:  # reported to the caller as a RemoteError
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write("\n" + MARKER + json.dumps(reply) + "\n")
    sys.stdout.flush()


def reap_children():
    """Collect wrappers and kill helpers that have ended (a persistent agent is their parent
    until it exits; one-shot agents leave them to init)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _lepton_serve(version):
    """Persistent mode: a hello line, then one reply line per request line, until stdin ends."""
    pid = os.getpid()
    served = 0

    def send(obj):
        sys.stdout.write("\n" + MARKER + json.dumps(obj) + "\n")
        sys.stdout.flush()

    send({"hello": {"pid": pid, "version": version}})
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return  # the channel closed: nothing is left running for this connection
        if not line.strip():
            continue
        served += 1
        rid = None
        try:
            req = json.loads(line.decode("utf-8"))
            rid = req.get("id")
            reply = {"ok": True, "result": OPS[req["op"]](req)}
        except Exception as exc:  # reported to the caller as a RemoteError
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        reply["id"] = rid
        reply["agent"] = {"pid": pid, "served": served, "version": version}
        try:
            send(reply)
        except OSError:
            return
        reap_children()
