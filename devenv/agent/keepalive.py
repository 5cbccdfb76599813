"""devenv-keepalive: run a command as a job that keeps its environment in use.

``devenv-keepalive [--id ID] [--log[=FILE]] [--detach] [--] CMD...`` runs CMD as a
child, stays alive while it runs (SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are forwarded
to it; detached, SIGINT and SIGQUIT too) and exits with its status (128+N when a
signal N ended it). While it runs, the environment counts one job: on sshd hosts the
presence agent sees this process (its argv names this script), on the local backend
it holds a connection to the instance's server. A job never outlives its
environment: terminating the environment ends it with everything else.

Each job leaves a record, ``WORKSPACE/.devenv/jobs/ID.json`` (id, command, pid,
started, ended, exit code, log), which ``devenv jobs`` lists; with ``--log`` the
command's output (stdout and stderr) also goes to ``ID.log`` beside it (or FILE), and
is still shown when not detached. ``--detach`` starts the job in the background (its
output logged) and prints its id.

``--jobs`` prints the records as one JSON line; ``--job-log ID`` prints a job's log.
Those two are not jobs themselves.

The workspace is the account's home on sshd hosts, and the local instance's workspace
folder on the local backend (its server says which). Standard library only, Python
3.8+, like the presence agent beside which hosts install it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

KEEPALIVE_VERSION = "1"
PROG = "devenv-keepalive"
ENV_MARKER = "DEVENV_ENV"
"""Set in every process of a local instance: the instance id."""
SOCKET_PREFIX = "\0devenv-jobs-"
"""The local instance server's abstract socket: ``SOCKET_PREFIX + instance id``."""
JOB_HELLO = b"job\n"
"""What a job says to the local server to be counted (a listing says nothing)."""
USAGE = f"{PROG} [--id ID] [--log[=FILE]] [--detach] [--] CMD..."
HELPER_FLAGS = ("--jobs", "--job-log", "--help", "-h", "--version")
"""First arguments of invocations that are not jobs (the presence agent skips them)."""
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
JOBS_SUBDIR = (".devenv", "jobs")
DRAIN_SECONDS = 0.2
"""After the command exits, how long its output may stay quiet before the job ends
(a background process it left may hold the pipe open forever)."""
DETACH_TIMEOUT = 10.0
CHUNK = 65536
# timezone.utc, spelled so that pyupgrade for newer Pythons keeps it (3.8 lacks datetime.UTC).
_UTC = timezone(timedelta(0))


def _now_iso() -> str:
    return datetime.now(_UTC).isoformat(timespec="seconds")


def new_id() -> str:
    return datetime.now(_UTC).strftime("%m%d") + "-" + secrets.token_hex(3)


# --- where the records live -------------------------------------------------------


def local_server(timeout: float = 2.0) -> tuple[socket.socket, str] | None:
    """(a connection to this local instance's server, its workspace), or None when this
    is not a local instance (or its server does not answer)."""
    instance = os.environ.get(ENV_MARKER)
    if not instance:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(SOCKET_PREFIX + instance)
        data = b""
        while not data.endswith(b"\n") and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        workspace = json.loads(data.decode())["workspace"]
        if not isinstance(workspace, str) or not workspace:
            raise ValueError("no workspace")
        sock.settimeout(None)
        return sock, workspace
    except (OSError, ValueError, KeyError, TypeError):
        sock.close()
        return None


def jobs_dir(workspace: str | None) -> str:
    return os.path.join(workspace or os.path.expanduser("~"), *JOBS_SUBDIR)


def record_path(directory: str, job_id: str) -> str:
    return os.path.join(directory, job_id + ".json")


def _write_record(path: str, record: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(record) + "\n")
    os.replace(tmp, path)


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def job_state(record: dict[str, Any]) -> str:
    """running (its keepalive still runs), exited, or lost (killed without a word)."""
    if record.get("ended"):
        return "exited"
    pid, started = record.get("pid"), record.get("pid_start")
    if isinstance(pid, int) and started is not None and _start_ticks(pid) == started:
        return "running"
    return "lost"


def read_records(directory: str) -> list[dict[str, Any]]:
    records = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                record = json.loads(handle.read(1_000_000))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            record["state"] = job_state(record)
            records.append(record)
    records.sort(key=lambda record: (str(record.get("started")), record["id"]))
    return records


# --- running a job ----------------------------------------------------------------


class Options:
    def __init__(self) -> None:
        self.job_id: str | None = None
        self.log: str | None = None
        """None: no log; "": the default (ID.log beside the record); else a path."""
        self.detach = False
        self.command: list[str] = []


def _fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def parse(argv: list[str]) -> Options | str:
    """The options of a job, or the error."""
    options = Options()
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg == "--id":
            if index + 1 >= len(argv):
                return "--id needs a value"
            options.job_id = argv[index + 1]
            index += 2
            continue
        if arg.startswith("--id="):
            options.job_id = arg[len("--id=") :]
        elif arg == "--log":
            options.log = ""
        elif arg.startswith("--log="):
            options.log = arg[len("--log=") :]
            if not options.log:
                return "--log= needs a file"
        elif arg == "--detach":
            options.detach = True
        else:
            return f"unknown option {arg} (usage: {USAGE})"
        index += 1
    options.command = argv[index:]
    if not options.command:
        return f"no command (usage: {USAGE})"
    if options.job_id is not None and not ID_PATTERN.match(options.job_id):
        return f"invalid job id {options.job_id!r}: letters, digits, '.', '_', '-' (at most 64)"
    return options


def _own_words(options: Options) -> list[str]:
    words = ["--id", str(options.job_id)]
    if options.log is not None:
        words.append("--log" if options.log == "" else f"--log={options.log}")
    return [*words, "--", *options.command]


def detach(options: Options, directory: str) -> int:
    """Start the job in a session of its own (output logged), print its id once its
    record exists."""
    if options.log is None:
        options.log = ""
    script = os.path.abspath(__file__)
    with open(os.devnull, "r+b") as devnull:
        child = subprocess.Popen(
            [sys.executable, script, *_own_words(options)],
            stdin=devnull,
            stdout=devnull,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    assert child.stderr is not None
    path = record_path(directory, str(options.job_id))
    deadline = time.monotonic() + DETACH_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            problem = child.stderr.read().decode(errors="replace").strip()
            if not os.path.exists(path):
                return _fail(problem or f"the job ended at once (status {child.returncode})", 1)
            break
        try:
            with open(path, encoding="utf-8") as handle:
                if json.loads(handle.read()).get("pid") == child.pid:
                    break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    child.stderr.close()
    print(options.job_id, flush=True)
    return 0


class _Forwarder:
    def __init__(self, detached: bool) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        wanted = [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2]
        if detached:
            wanted += [signal.SIGINT, signal.SIGQUIT]
        # What was ignored when we started (nohup: SIGHUP) stays ignored, for the command too.
        self.signals = [s for s in wanted if signal.getsignal(s) is not signal.SIG_IGN]
        for signum in self.signals:
            signal.signal(signum, self.forward)
        self.caught = []
        if not detached:
            # In a terminal's foreground group the command gets these from the terminal.
            # Caught, not ignored: an ignored signal would stay ignored in the command.
            for signum in (signal.SIGINT, signal.SIGQUIT):
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    signal.signal(signum, self.ignore)
                    self.caught.append(signum)

    def ignore(self, signum: int, frame: object) -> None:
        pass

    def forward(self, signum: int, frame: object) -> None:
        if self.child is not None and self.child.returncode is None:
            try:
                self.child.send_signal(signum)
            except OSError:
                pass

    def restore(self) -> None:
        for signum in (*self.signals, *self.caught):
            signal.signal(signum, signal.SIG_DFL)


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError:
            return False
    return True


def _pump(child: subprocess.Popen[bytes], sources: dict[int, int], log_fd: int, show: bool) -> None:
    """The command's output (pipe -> our fd: stdout, stderr) to the log, and to our own
    stdout and stderr while someone reads them."""
    quiet_since: float | None = None
    while sources:
        if child.poll() is not None and quiet_since is None:
            quiet_since = time.monotonic()
        if quiet_since is not None and time.monotonic() - quiet_since >= DRAIN_SECONDS:
            return
        ready, _, _ = select.select(list(sources), [], [], 0.05 if quiet_since else 0.5)
        for source in ready:
            try:
                data = os.read(source, CHUNK)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                del sources[source]
                continue
            if quiet_since is not None:
                quiet_since = time.monotonic()
            _write_all(log_fd, data)
            if show and not _write_all(sources[source], data):
                show = False  # the reader went away: the job goes on, logged


def run_job(options: Options, server: tuple[socket.socket, str] | None) -> int:
    directory = jobs_dir(server[1] if server else None)
    job_id = options.job_id or new_id()
    path = record_path(directory, job_id)
    log = None
    if options.log is not None:
        log = options.log or os.path.join(directory, job_id + ".log")
        log = os.path.abspath(log)
    record: dict[str, Any] = {
        "id": job_id,
        "command": options.command,
        "pid": os.getpid(),
        "pid_start": _start_ticks(os.getpid()),
        "child_pid": None,
        "cwd": os.getcwd(),
        "started": _now_iso(),
        "ended": None,
        "exit_code": None,
        "log": log,
    }
    if server is not None:
        try:
            server[0].sendall(JOB_HELLO)
        except OSError:
            print(f"{PROG}: warning: the environment may not count this job", file=sys.stderr)
    forwarder = _Forwarder(detached=os.getsid(0) == os.getpid())
    log_fd = -1
    try:
        if log is not None:
            log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        pipes: list[tuple[int, int]] = []
        if log_fd >= 0:
            pipes = [os.pipe(), os.pipe()]
        try:
            child = subprocess.Popen(
                options.command,
                stdout=pipes[0][1] if pipes else None,
                stderr=pipes[1][1] if pipes else None,
            )
        except OSError as error:
            record.update(ended=_now_iso(), exit_code=127)
            _write_record(path, record)
            return _fail(f"cannot run {options.command[0]}: {error.strerror or error}", 127)
        forwarder.child = child
        record["child_pid"] = child.pid
        _write_record(path, record)
        if pipes:
            for _, write_end in pipes:
                os.close(write_end)
            sources = {pipes[0][0]: sys.stdout.fileno(), pipes[1][0]: sys.stderr.fileno()}
            try:
                _pump(child, sources, log_fd, show=not options.detach)
            finally:
                for read_end, _ in pipes:
                    os.close(read_end)
        while True:
            try:
                code = child.wait()
                break
            except InterruptedError:
                continue
        status = 128 - code if code < 0 else code
        record.update(ended=_now_iso(), exit_code=status)
        if code < 0:
            record["signal"] = -code
        _write_record(path, record)
        return status
    finally:
        forwarder.restore()
        if log_fd >= 0:
            os.close(log_fd)


# --- the helpers --------------------------------------------------------------------


def list_jobs(directory: str) -> int:
    records = read_records(directory)
    for record in records:
        record.pop("pid_start", None)
    print(json.dumps(records))
    return 0


def print_log(directory: str, job_id: str) -> int:
    if not ID_PATTERN.match(job_id):
        return _fail(f"invalid job id {job_id!r}")
    try:
        with open(record_path(directory, job_id), encoding="utf-8") as handle:
            record = json.loads(handle.read())
    except (OSError, ValueError):
        return _fail(f"no job {job_id} in this environment (see `devenv jobs`)")
    log = record.get("log")
    if not isinstance(log, str):
        return _fail(f"job {job_id} keeps no log (it was started without --log)")
    try:
        with open(log, "rb") as handle:
            while True:
                data = handle.read(CHUNK)
                if not data:
                    break
                sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except FileNotFoundError:
        return 0  # nothing written yet
    except OSError as error:
        return _fail(f"cannot read the log of {job_id}: {error.strerror or error}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in ("--help", "-h"):
        print(__doc__)
        return 0
    if args and args[0] == "--version":
        print(KEEPALIVE_VERSION)
        return 0
    if args and args[0] in ("--jobs", "--job-log"):
        server = local_server()
        directory = jobs_dir(server[1] if server else None)
        if server is not None:
            server[0].close()
        if args[0] == "--jobs":
            return list_jobs(directory)
        if len(args) != 2:
            return _fail("usage: --job-log ID")
        return print_log(directory, args[1])
    options = parse(args)
    if isinstance(options, str):
        return _fail(options)
    server = local_server()
    try:
        directory = jobs_dir(server[1] if server else None)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if options.detach:
            options.job_id = options.job_id or new_id()
            return detach(options, directory)
        return run_job(options, server)
    except OSError as error:
        return _fail(f"{error.strerror or error}: {getattr(error, 'filename', '') or ''}", 1)
    finally:
        if server is not None:
            server[0].close()


if __name__ == "__main__":
    sys.exit(main())
