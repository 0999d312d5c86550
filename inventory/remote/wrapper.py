# ruff: noqa: UP031 - kept runnable by the old python3 a host may have
# lepton attempt wrapper: stdlib only, runs on the host, detached (setsid) from the SSH session.
#
#   python3 wrapper.py ATTEMPT_DIR            run the job described in ATTEMPT_DIR
#   python3 wrapper.py --kill-after DIR SECS  after SECS, SIGKILL what is left of DIR's job
#
# It records `wrapper.json` (its pid, start time and boot id, and the job's pid) atomically, runs
# the job with `bash -c <command file content>` in its own session with stdin from /dev/null and
# stdout/stderr to files, enforces the time limit (TERM, then KILL after the grace; a `signal`
# such as "USR1@120" in launch.json is sent once that many seconds before it), and writes
# `end.json` then `exit_code` atomically (tmp + rename) when the job ends.
import errno
import json
import os
import signal
import subprocess
import sys
import time

ARG_MAX_SAFE = 100000  # one argv string may not exceed 128 KiB on Linux
END_WRITE_PATIENCE_S = 180.0  # how long to keep trying to record how the job ended (default)
# errors of a directory out of reach for a while, worth waiting out
OUT_OF_REACH = set(
    getattr(errno, n)
    for n in ("ENOENT", "ESTALE", "EIO", "ENOTCONN", "ETIMEDOUT", "EHOSTDOWN", "EHOSTUNREACH")
    if hasattr(errno, n)
)


def read_boot_id():
    """This boot's id ("" where the kernel has none)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_stat(pid):
    """(state, session id, start time) of a process from /proc, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[3]), int(fields[19])


def write_atomic(path, data):
    """Write `data` to a temporary file, fsync it and rename it over `path`."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def session_pids(sid):
    """Every live process whose session id is `sid` (the job and all it started)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st is not None and st[1] == sid and st[0] not in ("Z", "X"):
            pids.append(int(name))
    return pids


def signal_job(job_pid, job_start, sig):
    """Send `sig` to the job's process group and every process of its session."""
    st = proc_stat(job_pid)
    if st is not None and st[2] != job_start:
        return  # the pid was reused: not our job any more
    try:
        os.killpg(job_pid, sig)
    except OSError:
        pass
    for pid in session_pids(job_pid):
        try:
            if os.getpgid(pid) != job_pid:  # the group's signal reached it: a trap runs once
                os.kill(pid, sig)
        except OSError:
            pass


def kill_after(d, grace):
    """After `grace` seconds, SIGKILL whatever is left of the attempt in `d`."""
    time.sleep(grace)
    try:
        with open(os.path.join(d, "wrapper.json")) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return 0
    if info.get("boot_id") != read_boot_id():
        return 0
    signal_job(info["job_pid"], info["job_start"], signal.SIGKILL)
    return 0


def job_env(d, spec):
    """The job's environment: the host's for this account, less lepton's own (a `--local` host
    inherits the dispatcher's: its LEPTON_HOME and its ssh agent are not the job's business),
    plus the job's env, its GPUs and its attempt."""
    env = dict(
        (k, v)
        for k, v in os.environ.items()
        if not k.startswith("LEPTON_") and k != "SSH_AUTH_SOCK"
    )
    env.update(spec.get("env") or {})
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.get("gpu_ids") or [])
    env["LEPTON_JOB_ID"] = str(spec["job_id"])
    env["LEPTON_ATTEMPT"] = spec["token"]
    env["LEPTON_ATTEMPT_DIR"] = d
    return env


def job_workdir(spec):
    """The job's working directory; a relative one is under the home directory, as in ssh."""
    workdir = os.path.expanduser(spec.get("workdir") or "~")
    if not os.path.isabs(workdir):
        workdir = os.path.join(os.path.expanduser("~"), workdir)
    return workdir


def record_end(d, spec, started_at, code, reason, timed_out=False, sig=None):
    """Record the end: `end.json` first, then `exit_code` (its presence means done)."""
    cancelled = os.path.exists(os.path.join(d, "cancel_requested"))
    if cancelled and not timed_out and not (reason or "").startswith("cancelled"):
        reason = "cancelled"
    end = {
        "exit_code": code,
        "ended_at": time.time(),
        "timed_out": timed_out,
        "cancelled": cancelled,
        "signal": sig,
        "reason": reason,
        "started_at": started_at,
    }
    # The directory may be out of reach for a while (a network filesystem hiccup): keep
    # trying, backing off, about as long as the dispatcher waits for a hidden directory; a
    # job that ended must not read as lost and be run again. A full disk, a quota or a
    # read-only filesystem will not pass by waiting: give up at once (the attempt reads as
    # lost, as before, rather than as running for minutes).
    patience = float(spec.get("end_patience_s") or END_WRITE_PATIENCE_S)
    delay, deadline = 0.5, time.time() + patience
    while True:
        try:
            write_atomic(os.path.join(d, "end.json"), json.dumps(end).encode())
            write_atomic(os.path.join(d, "exit_code"), ("%d\n" % code).encode())
            return
        except OSError as exc:
            if exc.errno not in OUT_OF_REACH or time.time() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def stop_request(d):
    """'fenced' or 'cancel' when either was asked of this attempt, else None."""
    if os.path.exists(os.path.join(d, "fenced")):
        return "fenced"
    if os.path.exists(os.path.join(d, "cancel_requested")):
        return "cancel"
    return None


def warning(spec, deadline):
    """(when, signal) of the job's warning before its time limit (`signal`: "USR1@120"), or
    (None, None); a signal name this host does not know is skipped."""
    text = spec.get("signal")
    if not text or deadline is None:
        return None, None
    name, _, lead = str(text).partition("@")
    sig = getattr(signal, "SIG" + name, None)
    if sig is None:
        return None, None
    return deadline - float(lead or 60), sig


def warn_job(job_pid, job_start, sig):
    """Send the warning to the job, if it still runs (its leader alive)."""
    st = proc_stat(job_pid)
    if st is not None and st[2] == job_start:
        signal_job(job_pid, job_start, sig)


def supervise(d, proc, job_start, spec, grace, started_at):
    """Wait for the job, enforcing the time limit and a late cancel or fence; (rc, timed_out)."""
    # A cancel or fence that came after main's first check but before wrapper.json was written
    # found nothing to signal; the one who asked wrote its file first, so it is seen here.
    kill_at = None
    late = stop_request(d)
    if late == "fenced":
        signal_job(proc.pid, job_start, signal.SIGKILL)
    elif late == "cancel":
        signal_job(proc.pid, job_start, signal.SIGTERM)
        kill_at = time.time() + grace
    limit = spec.get("time_limit_s")
    deadline = started_at + float(limit) if limit else None
    warn_at, warn_sig = warning(spec, deadline)
    timed_out = False
    rc = None
    while rc is None:
        waits = [t for t in (warn_at, None if timed_out else deadline, kill_at) if t is not None]
        try:
            rc = proc.wait(timeout=max(min(waits) - time.time(), 0.0) if waits else None)
        except subprocess.TimeoutExpired:
            if warn_at is not None and time.time() >= warn_at:
                warn_at = None  # `--signal USR1@120`: once, that long before the limit
                warn_job(proc.pid, job_start, warn_sig)
            elif kill_at is not None and time.time() >= kill_at:
                signal_job(proc.pid, job_start, signal.SIGKILL)
                kill_at = None
            elif deadline is not None and not timed_out and time.time() >= deadline:
                timed_out = True  # TERM now, KILL after the grace (or sooner, for a cancel)
                signal_job(proc.pid, job_start, signal.SIGTERM)
                kill_at = min(kill_at or float("inf"), time.time() + grace)
    return rc, timed_out


def main(d):
    """Run the attempt in directory `d` to its end and record how it ended."""
    with open(os.path.join(d, "launch.json")) as f:
        spec = json.load(f)
    grace = float(spec.get("kill_grace_s") or 10)
    cmd_path = os.path.join(d, "command")
    with open(cmd_path, "rb") as f:
        command = f.read()
    argv = ["bash", "-c", command] if len(command) < ARG_MAX_SAFE else ["bash", cmd_path]
    out = open(os.path.join(d, "stdout"), "ab")
    err = open(os.path.join(d, "stderr"), "ab")
    started_at = time.time()

    def finish(code, reason, timed_out=False, sig=None):
        record_end(d, spec, started_at, code, reason, timed_out, sig)

    early = stop_request(d)
    if early is not None:  # asked before there was a job to signal: do not start it
        why = "fenced before it started" if early == "fenced" else "cancelled before it started"
        finish(137 if early == "fenced" else 143, why)
        return 0
    try:
        proc = subprocess.Popen(
            argv,
            cwd=job_workdir(spec),
            env=job_env(d, spec),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        err.write((f"lepton: cannot start the job: {exc}\n").encode())
        err.flush()
        finish(127, "cannot start: %s" % (exc.strerror or exc))
        return 0
    st = proc_stat(proc.pid)
    job_start = st[2] if st else 0
    me = proc_stat(os.getpid())
    info = {
        "pid": os.getpid(),
        "start_time": me[2] if me else 0,
        "boot_id": read_boot_id(),
        "job_pid": proc.pid,
        "job_start": job_start,
        "started_at": started_at,
    }
    write_atomic(os.path.join(d, "wrapper.json"), json.dumps(info).encode())

    def forward(signum, frame):
        """Pass a TERM/INT sent to the wrapper on to the whole job."""
        signal_job(proc.pid, job_start, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    rc, timed_out = supervise(d, proc, job_start, spec, grace, started_at)
    # the job's leader is gone; make sure nothing of its session outlives it after a cancel/timeout
    if timed_out or os.path.exists(os.path.join(d, "cancel_requested")):
        signal_job(proc.pid, job_start, signal.SIGKILL)
    sig = -rc if rc < 0 else None
    if timed_out:
        finish(124, "time limit", timed_out=True, sig=sig)
    elif sig is not None:
        finish(128 + sig, "killed by signal %d" % sig, sig=sig)
    else:
        finish(rc, None)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--kill-after":
        sys.exit(kill_after(sys.argv[2], float(sys.argv[3])))
    sys.exit(main(sys.argv[1]))
