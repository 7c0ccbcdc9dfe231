"""Starting, using and stopping the single-node cluster."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

import httpx

from devstack.errors import StackError
from devstack.netports import LOOPBACK, reserve_ports
from devstack.slurm.config import PARTITION, Layout, NodeShape, fake_gpu_devices, gres_conf, slurm_conf
from devstack.slurm.daemon import Daemon
from devstack.slurm.packages import find_programs

API_VERSION = "v0.0.38"  # the newest that Slurm 22.05's slurmrestd serves
USER = "root"
_REST_USER = ("nobody", "nogroup")  # slurmrestd refuses to run as root or as SlurmUser
_START_TIMEOUT = 30.0
_STOP_GRACE = 5.0
_JOBS_GONE_TIMEOUT = 15.0
_POLL = 0.05
_TOKEN = re.compile(r"SLURM_JWT=(\S+)")
_BIND_ATTEMPTS = 3
_ADDRESS_IN_USE = re.compile(r".*address already in use.*", re.IGNORECASE)
# slurmstepd leaves a socket n1_<job>.<step> in the spool directory while a step runs: it detaches from
# slurmd and would outlive it, so the cluster stops only once these are gone.
_STEP_SOCKET = re.compile(r"^n1_\d+")


class _AddressInUse(Exception):
    pass


@dataclass
class _Processes:
    programs: dict[str, str]
    layout: Layout
    env: dict[str, str]
    rest_port: int
    daemons: dict[str, Daemon] = field(default_factory=dict)
    stopped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: where to reach it, how to authenticate, what the node offers."""

    directory: Path
    rest_url: str  # http://127.0.0.1:PORT
    api_version: str
    user: str  # the user the minted tokens are for
    token_file: Path  # the current token (mode 0600), rewritten by mint_token
    jwt_key: Path  # Slurm's HS256 key: whoever reads it can mint tokens of their own
    slurm_conf: Path
    partition: str
    jobs_dir: Path  # mode 0755: job directories may go under it
    cpus: int
    gpus: int
    memory_mb: int
    _processes: _Processes = field(repr=False, compare=False)

    @property
    def env(self) -> dict[str, str]:
        """The environment Slurm's command-line tools need to talk to this cluster."""
        return dict(self._processes.env)

    @property
    def pids(self) -> dict[str, int]:
        """Daemon name -> pid of the daemons started."""
        return {name: daemon.pid for name, daemon in self._processes.daemons.items()}

    def mint_token(self, lifespan_seconds: int = 3600) -> str:
        """A new token for `user`, also written to `token_file`."""
        output = _run(["scontrol", "token", f"username={self.user}", f"lifespan={lifespan_seconds}"], self._processes)
        match = _TOKEN.search(output)
        if match is None:
            raise StackError(f"scontrol token printed no token: {output.strip()}")
        token = match.group(1)
        _write_private(self.token_file, token + "\n")
        return token

    def restart_rest(self) -> None:
        """Stop slurmrestd and start it again on the same port; returns once it answers."""
        with self._processes.lock:
            if self._processes.stopped:
                raise StackError("the Slurm cluster is stopped")
            rest = self._processes.daemons.pop("slurmrestd", None)
            if rest is not None:
                rest.stop(_STOP_GRACE)
            _start_rest(self._processes)
            try:
                _wait_rest(self, self._processes, time.monotonic() + _START_TIMEOUT)
            except _AddressInUse as taken:
                raise StackError(f"slurmrestd could not listen on {self.rest_url} again: {taken}") from None

    def stop(self) -> None:
        """Cancel every job, wait until their steps are gone, then stop the daemons. Safe to call twice."""
        with self._processes.lock:
            if self._processes.stopped:
                return
            self._processes.stopped = True
            _stop(self._processes)

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def start_slurm(
    directory: Path,
    *,
    cpus: int = 16,
    gpus: int = 2,
    memory_mb: int | None = None,
    default_memory_per_cpu_mb: int = 256,
    token_lifespan_seconds: int = 3600,
) -> SlurmCluster:
    """Start a cluster in `directory`, which must be new or empty: a directory is never used twice.

    Raises SlurmUnavailable when Debian's packages are missing (the message names them) and StackError when
    a daemon fails; nothing is left running then. Call from the thread that will also stop it: the daemons
    get SIGTERM from the kernel when that thread ends.
    """
    programs = find_programs()
    layout = Layout(_fresh_directory(directory))
    for path in layout.directories():
        path.mkdir()
    layout.jobs.chmod(0o755)
    _write_private(layout.jwt_key, secrets.token_bytes(32))
    _write_private(layout.munge_key, secrets.token_bytes(1024), mode=0o400)
    shape = NodeShape(cpus, gpus, memory_mb or _machine_memory_mb(), default_memory_per_cpu_mb)
    (layout.etc / "gres.conf").write_text(gres_conf(layout, shape))
    fake_gpu_devices(layout, shape)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SLURM_CONF": str(layout.slurm_conf)}
    processes = _Processes(programs, layout, env, rest_port=0)
    cluster = SlurmCluster(
        directory=layout.root,
        rest_url="",
        api_version=API_VERSION,
        user=USER,
        token_file=layout.token_file,
        jwt_key=layout.jwt_key,
        slurm_conf=layout.slurm_conf,
        partition=PARTITION,
        jobs_dir=layout.jobs,
        cpus=shape.cpus,
        gpus=shape.gpus,
        memory_mb=shape.memory_mb,
        _processes=processes,
    )
    deadline = time.monotonic() + _START_TIMEOUT
    try:
        _spawn(processes, "munged", [
            programs["munged"], "--foreground", "--force",
            f"--socket={layout.munge_socket}", f"--key-file={layout.munge_key}",
            f"--log-file={layout.log / 'munged.log'}", f"--pid-file={layout.run / 'munged.pid'}",
            f"--seed-file={layout.munge / 'munged.seed'}",
        ])  # fmt: skip
        _wait(lambda: layout.munge_socket.is_socket(), processes, deadline, "munged to open its socket")
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            controller_port, node_port, rest_port = reserve_ports(3)
            processes.rest_port = rest_port
            conf = slurm_conf(layout, shape, controller_port=controller_port, node_port=node_port)
            layout.slurm_conf.write_text(conf)
            cluster = replace(cluster, rest_url=f"http://{LOOPBACK}:{rest_port}")
            try:
                _start_daemons(cluster, processes, token_lifespan_seconds, deadline)
                break
            except _AddressInUse as taken:
                # The ports were free when chosen but released before the daemons bound them: new ones.
                for name in ("slurmrestd", "slurmd", "slurmctld"):
                    daemon = processes.daemons.pop(name, None)
                    if daemon is not None:
                        # No job ran yet; slurmd, still registering, would ignore SIGTERM for MessageTimeout.
                        daemon.stop(grace=0.5)
                if attempt == _BIND_ATTEMPTS:
                    raise StackError(f"{taken} on {_BIND_ATTEMPTS} sets of ports in a row") from None
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_daemons(cluster: SlurmCluster, processes: _Processes, token_lifespan: int, deadline: float) -> None:
    programs, conf = processes.programs, str(processes.layout.slurm_conf)
    # -i: a fresh cluster, whatever state a previous one saved
    _spawn(processes, "slurmctld", [programs["slurmctld"], "-D", "-i", "-f", conf])
    _spawn(processes, "slurmd", [programs["slurmd"], "-D", "-N", "n1", "-f", conf])
    _wait(lambda: _node_idle(processes), processes, deadline, "the node to become idle")
    cluster.mint_token(token_lifespan)
    _start_rest(processes)
    _wait_rest(cluster, processes, deadline)


def _fresh_directory(directory: Path) -> Path:
    directory = directory.absolute()
    if directory.exists() and any(directory.iterdir()):
        raise StackError(f"{directory} is not empty: a Slurm cluster starts only in a new or empty directory")
    closed = closed_ancestor(directory)
    if closed is not None:
        raise StackError(
            f"{closed} is not searchable by other users: slurmrestd (user nobody) could not read "
            f"{directory}/etc/slurm.conf; use a directory below one that is (for example under /tmp)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    return directory


def closed_ancestor(directory: Path) -> Path | None:
    """The first directory above `directory` that other users may not enter, or None.

    slurmrestd runs as nobody and reads the cluster's slurm.conf, and jobs may run as other users.
    """
    for parent in directory.absolute().parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return parent
    return None


def _machine_memory_mb() -> int:
    total_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
    )
    return max(1024, total_kb // 1024 - 1024)


def _write_private(path: Path, content: str | bytes, *, mode: int = 0o600) -> None:
    """Write `path` so that it never exists with looser permissions, replacing it atomically."""
    data = content.encode() if isinstance(content, str) else content
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    partial.chmod(mode)
    partial.replace(path)


def _spawn(processes: _Processes, name: str, argv: list[str], *, user: tuple[str, str] | None = None) -> None:
    layout = processes.layout
    env = dict(processes.env)
    if name == "slurmrestd":
        # Without it slurmrestd rejects every token ("Rejecting thread config token").
        env["SLURM_JWT"] = "daemon"
    try:
        processes.daemons[name] = Daemon.spawn(
            name,
            argv,
            cwd=layout.root,
            log_path=layout.log / f"{name}.stdout",
            own_log=layout.log / f"{name}.log",
            env=env,
            user=user[0] if user else None,
            group=user[1] if user else None,
        )
    except OSError as error:
        raise StackError(f"{name} could not be started ({argv[0]}): {error.strerror or error}") from None


def _start_rest(processes: _Processes) -> None:
    programs, layout = processes.programs, processes.layout
    _spawn(
        processes,
        "slurmrestd",
        [
            programs["slurmrestd"], "-f", str(layout.slurm_conf), "-a", "rest_auth/jwt",
            "-s", f"openapi/{API_VERSION}", f"{LOOPBACK}:{processes.rest_port}",
        ],
        user=_REST_USER,
    )  # fmt: skip


def _wait_rest(cluster: SlurmCluster, processes: _Processes, deadline: float) -> None:
    token = cluster.token_file.read_text().strip()
    headers = {"X-SLURM-USER-NAME": cluster.user, "X-SLURM-USER-TOKEN": token}
    url = f"{cluster.rest_url}/slurm/{cluster.api_version}/ping"

    def answers() -> bool:
        try:
            response = httpx.get(url, headers=headers, timeout=2.0)
        except httpx.TransportError:
            return False
        pings = response.json().get("pings", []) if response.status_code == 200 else []
        return any(ping.get("ping") == "UP" for ping in pings)

    _wait(answers, processes, deadline, f"slurmrestd to answer on {cluster.rest_url}")


def _wait(ready: Callable[[], bool], processes: _Processes, deadline: float, what: str) -> None:
    while True:
        # The daemons first: a port another program took is retried at once, not after a client's timeout.
        for daemon in processes.daemons.values():
            taken = _ADDRESS_IN_USE.search(daemon.log_text())
            if taken is not None:
                raise _AddressInUse(f"{daemon.name}: {taken.group(0)}")
            code = daemon.exited()
            if code is not None:
                raise StackError(
                    f"{daemon.name} exited with code {code} while waiting for {what}: {_logs(processes, daemon)}"
                )
        if ready():
            return
        if time.monotonic() > deadline:
            raise StackError(f"timed out waiting for {what}; logs in {processes.layout.log}")
        time.sleep(_POLL)


def _logs(processes: _Processes, daemon: Daemon) -> str:
    return f"{daemon.log_summary()} (logs in {processes.layout.log})"


def _run(argv: list[str], processes: _Processes, *, check: bool = True, timeout: float = 20) -> str:
    program = processes.programs.get(argv[0], argv[0])
    result = subprocess.run(
        [program, *argv[1:]], env=processes.env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise StackError(f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def _node_idle(processes: _Processes) -> bool:
    try:
        # Short: a controller port taken by a program that accepts and never answers would hold it for
        # MessageTimeout (10 s), while the daemon's log already says why.
        state = _run(["sinfo", "-h", "-N", "-o", "%T"], processes, check=False, timeout=2).strip()
    except subprocess.TimeoutExpired:
        return False
    # A node whose configuration slurmctld rejects never becomes idle: say why at once.
    if state.startswith(("inval", "drain")):
        reason = _run(["sinfo", "-h", "-N", "-o", "%E"], processes, check=False).strip()
        raise StackError(f"the node is {state}: {reason} (logs in {processes.layout.log})")
    return state == "idle"


def _stop(processes: _Processes) -> None:
    daemons = processes.daemons
    controller, node = daemons.get("slurmctld"), daemons.get("slurmd")
    if controller and node and controller.exited() is None and node.exited() is None:
        _cancel_all_jobs(processes)
    for name in ("slurmrestd", "slurmd", "slurmctld", "munged"):
        daemon = daemons.get(name)
        if daemon is not None:
            daemon.stop(_STOP_GRACE)


def _cancel_all_jobs(processes: _Processes) -> None:
    # %F: an array's own id, which cancels all of its tasks, pending ones included
    ids = set(_run(["squeue", "-h", "-o", "%F"], processes, check=False).split())
    if ids:
        _run(["scancel", *sorted(ids)], processes, check=False)
    deadline = time.monotonic() + _JOBS_GONE_TIMEOUT
    while time.monotonic() < deadline:
        active = _run(["squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i"], processes, check=False).strip()
        steps = [entry for entry in os.listdir(processes.layout.spool) if _STEP_SOCKET.match(entry)]
        if not active and not steps:
            return
        time.sleep(0.1)
