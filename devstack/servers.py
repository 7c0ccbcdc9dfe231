"""The three servers: how each is configured, started, checked and cleaned up after."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import signal
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from devstack import probes
from devstack.access import (
    ADMIN,
    MONGO_ADMIN,
    MONGO_ROLES,
    NatsUser,
    S3Keys,
    mongo_password,
    nats_password,
    with_user,
)
from devstack.credentials import StackCredentials, write_private
from devstack.errors import StackError
from devstack.netports import LOOPBACK, reserve_ports
from devstack.process import ServerProcess


class ServerSpec(ABC):
    """One kind of server. `home` is STATE_DIR/<name>: its data, config and working directory."""

    # Plain attributes, not ClassVars: one kind may run as several servers (the nodes of a NATS cluster).
    name: str  # data directory, log file and messages
    role: str  # what it is to callers: the key in StackEndpoints.pids
    program: ClassVar[str]
    port_count: ClassVar[int]
    stop_grace: ClassVar[float] = 10.0
    death_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def prepare(self, home: Path, ports: Sequence[int]) -> None:
        home.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def argv(self, executable: str, home: Path, ports: Sequence[int]) -> list[str]: ...

    @abstractmethod
    def url(self, ports: Sequence[int]) -> str: ...

    @abstractmethod
    async def probe(self, ports: Sequence[int]) -> str | None: ...

    def cleanup(self, ports: Sequence[int]) -> None:  # noqa: B027 - a hook most servers need not fill
        """Called once the process is gone, whether it stopped or crashed."""

    async def provision(self, executable: str, home: Path, log_path: Path, timeout: float) -> None:  # noqa: B027
        """Called once before the server is started, for set-up that needs the server itself running."""


@dataclass(frozen=True)
class NatsCluster:
    """The plan of a JetStream cluster on loopback, fixed before any node starts: each node is told the
    route port of every node. Routes are a way in too: a route must give the cluster's own credentials."""

    size: int
    route_ports: tuple[int, ...]
    route_password: str
    name: str = "gxwf"
    route_user: str = "route"

    @classmethod
    def plan(cls, credentials: StackCredentials, size: int) -> NatsCluster:
        return cls(size, tuple(reserve_ports(size)), credentials.secret("nats-cluster:route"))

    def node_name(self, node: int) -> str:
        return f"nats-{node}"

    def block(self, node: int) -> dict[str, object]:
        """The `cluster` section of node `node`'s configuration (nodes count from 1)."""
        credentials = f"{self.route_user}:{self.route_password}"
        return {
            "name": self.name,
            "listen": f"{LOOPBACK}:{self.route_ports[node - 1]}",
            "authorization": {"user": self.route_user, "password": self.route_password},
            # Every node, itself included (nats-server recognises and skips itself): one list for all.
            "routes": [f"nats-route://{credentials}@{LOOPBACK}:{port}" for port in self.route_ports],
            # Clients are given every node; announced ones would come without the credentials of the given.
            "no_advertise": True,
        }


class NatsServer(ServerSpec):
    """One NATS server with JetStream; with `cluster`, node `node` of that cluster (STATE_DIR/nats-<node>)."""

    name = "nats"
    role = "nats"
    program = "nats-server"
    port_count = 2  # clients, monitoring

    def __init__(
        self,
        credentials: StackCredentials,
        users: Sequence[NatsUser] = (),
        *,
        cluster: NatsCluster | None = None,
        node: int = 1,
    ) -> None:
        self.users = [NatsUser(ADMIN), *(user for user in users if user.name != ADMIN)]
        self.credentials = credentials
        self.cluster = cluster
        self.node = node
        if cluster is not None:
            self.name = self.role = cluster.node_name(node)
        # Made now, so that the caller saves them before anything uses them.
        for user in self.users:
            nats_password(credentials, user.name)

    def prepare(self, home: Path, ports: Sequence[int]) -> None:
        super().prepare(home, ports)
        # Only the users (and a cluster's names and routes): ports and the rest stay command-line flags. The
        # format is a superset of JSON.
        authorization = {
            "users": [user.authorization(nats_password(self.credentials, user.name)) for user in self.users]
        }
        config: dict[str, object] = {"authorization": authorization}
        if self.cluster is not None:
            # JetStream in a cluster tells its peers apart by server name: the same on every start of a node.
            config |= {"server_name": self.name, "cluster": self.cluster.block(self.node)}
        write_private(home / "nats.conf", json.dumps(config, indent=2) + "\n")

    def argv(self, executable: str, home: Path, ports: Sequence[int]) -> list[str]:
        # The monitoring port listens on the -a address too; nats-server has no flag for it.
        client, monitor = ports
        return [
            executable,
            *("-c", str(home / "nats.conf")),
            *("-js", "-a", LOOPBACK, "-p", str(client), "-m", str(monitor), "-sd", str(home)),
        ]

    def user_url(self, ports: Sequence[int], user: str) -> str:
        return with_user(self.url(ports), user, nats_password(self.credentials, user))

    def url(self, ports: Sequence[int]) -> str:
        return f"nats://{LOOPBACK}:{ports[0]}"

    def monitor_url(self, ports: Sequence[int]) -> str:
        return f"http://{LOOPBACK}:{ports[1]}"

    async def probe(self, ports: Sequence[int]) -> str | None:
        # /healthz answers 200 only once JetStream is up, not merely the client port.
        if (failure := await probes.http_ok(f"{self.monitor_url(ports)}/healthz")) is not None:
            return failure
        if self.cluster is None:
            return None
        # A node alone answers /healthz too: ready means the cluster formed and has a JetStream meta leader.
        return await probes.jetstream_cluster(self.monitor_url(ports), self.cluster.name, self.cluster.size)


class SecantusServer(ServerSpec):
    """SecantusDB, a MongoDB-wire server. GPL-2.0: it is only ever run as a program, never imported.

    Left at its default it advertises itself as the primary of a one-node replica set named `secantus`,
    which is what lets PyMongo use change streams and transactions. `--standalone` would break both.
    """

    name = "secantusd"
    role = "mongo"
    program = "secantusd-py"
    port_count = 1
    # A stop sends SIGTERM first: killed without --sync-on-commit (below), secantusd loses acknowledged writes
    # still in its log buffer (up to 18 of 100 inserts in our runs). But its shutdown runs inside the signal handler
    # and once, after its parent was killed, it deadlocked there for good. A server that outlives a
    # killed parent holds the state directory forever; a parent killed with SIGKILL crashed anyway.
    death_signal = signal.SIGKILL
    # Every commit fsyncs the log before it is acknowledged. Without it a SIGKILL loses the last acknowledged
    # writes (about 1% of them in `gxwf bench store-crash`, w=1 and w=majority alike, up to 28 in one kill);
    # with it none of 8,000 were lost, for 10-20% fewer writes per second from 8 writers and about a third less
    # throughput through the event pipeline, whose writes each wait for their sync (docs/durability.md).
    durability_flags: ClassVar[tuple[str, ...]] = ("--sync-on-commit",)

    def __init__(self, credentials: StackCredentials) -> None:
        self.credentials = credentials
        for user in MONGO_ROLES:
            mongo_password(credentials, user)

    def prepare(self, home: Path, ports: Sequence[int]) -> None:
        super().prepare(home, ports)
        config = home / "secantusd.toml"
        if not config.exists():
            config.write_text(
                "# Passed with --config so that a secantusd.toml in the working directory, ~/.secantus or\n"
                "# /etc/secantus is not picked up. Settings added here are kept across restarts.\n"
            )

    def argv(self, executable: str, home: Path, ports: Sequence[int]) -> list[str]:
        return [*self.command(executable, home, ports[0]), *self.durability_flags, "--auth"]

    @staticmethod
    def command(executable: str, home: Path, port: int) -> list[str]:
        return [
            executable,
            *("--config", str(home / "secantusd.toml")),
            *("--host", LOOPBACK, "--port", str(port)),
            *("--storage-path", str(home / "data")),
        ]

    def url(self, ports: Sequence[int]) -> str:
        # directConnection: talk to this one server, whatever host list its replica-set reply names.
        return f"mongodb://{LOOPBACK}:{ports[0]}/?directConnection=true&authSource=admin"

    def user_url(self, ports: Sequence[int], user: str) -> str:
        return with_user(self.url(ports), user, mongo_password(self.credentials, user))

    async def probe(self, ports: Sequence[int]) -> str | None:
        return await probes.mongo_ping(self.user_url(ports, MONGO_ADMIN))

    async def provision(self, executable: str, home: Path, log_path: Path, timeout: float) -> None:
        """Create the users, or reset their passwords, when the data directory does not have the current ones.

        secantusd has no localhost exception: with --auth every command but the handshake needs a user, so
        users are made by a run without --auth, on a port of its own that nobody has been told, killed after
        an fsync (a graceful stop takes 2 s and saves nothing more). That costs ~0.6 s (idle machine) to ~1.3 s,
        on the first start only, beside SeaweedFS's longer start. A user someone else created meanwhile is dropped.
        """
        self.prepare(home, ())
        users = {user: mongo_password(self.credentials, user) for user in MONGO_ROLES}
        marker = home / "users.sha256"
        fingerprint = hashlib.sha256(json.dumps(users, sort_keys=True).encode()).hexdigest()
        if marker.exists() and marker.read_text().strip() == fingerprint:
            return
        (port,) = reserve_ports(1)
        process = await ServerProcess.spawn(
            self.name,
            self.command(executable, home, port),
            cwd=home,
            log_path=log_path,
            death_signal=signal.SIGKILL,
        )
        try:
            url = f"mongodb://{LOOPBACK}:{port}/?directConnection=true"
            await _until_ready(process, lambda: probes.mongo_ping(url), timeout)
            failure = await probes.mongo_set_users(url, {u: (users[u], MONGO_ROLES[u]) for u in users})
            if failure is not None:
                raise StackError(f"{self.name}: could not create its users: {failure} (log: {log_path})")
        finally:
            await process.kill()
        write_private(marker, fingerprint + "\n")


# One volume per new bucket instead of seven: SeaweedFS makes every bucket a collection with its own
# volumes, and with seven each the volume slots run out after a handful of buckets.
_SEAWEEDFS_MASTER_TOML = """\
# Written by devstack at every start; edits are overwritten.
[master.volume_growth]
copy_1 = 1
"""
_MASTER_DIR = re.compile(r"m\d+")


class SeaweedServer(ServerSpec):
    """SeaweedFS: master, volume server, filer and S3 gateway in one `weed server` process."""

    name = "seaweedfs"
    role = "s3"
    program = "weed"
    port_count = 8  # http and gRPC of master, volume, filer, S3
    # On SIGTERM the filer waits 15 s for its own metadata subscriptions to end and then fails to flush
    # because the volume server is already down: a graceful stop takes 15-20 s and achieves nothing a
    # kill does not. Its writes are on disk once acknowledged (leveldb journal, volume files), so a short
    # grace lets requests in flight finish, and the death signal is SIGKILL for the same reason.
    stop_grace = 2.0
    death_signal = signal.SIGKILL

    def __init__(self, bucket: str, credentials: StackCredentials) -> None:
        self.bucket = bucket
        self.credentials = credentials
        self.keys = S3Keys.of(credentials)
        self.jwt_keys = {
            part: credentials.secret(f"s3:jwt:{part}")
            for part in ("signing", "signing.read", "filer_signing", "filer_signing.read")
        }

    def prepare(self, home: Path, ports: Sequence[int]) -> None:
        data = home / "data"
        data.mkdir(parents=True, exist_ok=True)
        (home / "master.toml").write_text(_SEAWEEDFS_MASTER_TOML)
        # One identity, allowed everything (buckets, and users through the S3 port's IAM API); no anonymous one,
        # so an unsigned request is refused. Identities added through the IAM API are kept by the filer.
        identity = {
            "name": "gxwf",
            "credentials": [{"accessKey": self.keys.access_key, "secretKey": self.keys.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        write_private(home / "s3.json", json.dumps({"identities": [identity]}, indent=2) + "\n")
        # The filer's and volume server's HTTP ports would otherwise serve and take every object unasked.
        security = "".join(f'[jwt.{part}]\nkey = "{key}"\n' for part, key in self.jwt_keys.items())
        write_private(home / "security.toml", security)
        # The master keeps its raft state in data/m<port>; a new port means a new directory and the old
        # one is never read again, so drop those left by earlier runs instead of piling them up.
        for stale in data.iterdir():
            if stale.is_dir() and _MASTER_DIR.fullmatch(stale.name) and stale.name != f"m{ports[0]}":
                shutil.rmtree(stale, ignore_errors=True)

    def argv(self, executable: str, home: Path, ports: Sequence[int]) -> list[str]:
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
        return [
            executable,
            # glog writes log files to /tmp unless told to use stderr, which goes to our log.
            "-logtostderr",
            # master.toml from here, before ~/.seaweedfs and /etc/seaweedfs.
            f"-config_dir={home}",
            "server",
            f"-dir={home / 'data'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            # Otherwise fixed ports 8181 and 9101, on which two stacks on one machine collide.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={home / 's3.json'}",
            # The administrator identity may add users (say one per consumer, limited to a prefix) while the
            # server runs, through the IAM API on the S3 port; other identities and unsigned requests may not.
            "-s3.iam.readOnly=false",
            # The default election timeout (10 s) is waited out in full on every restart of the single
            # master; 1 s takes a restart from ~17 s to ~3.5 s.
            "-master.electionTimeout=1s",
            # Volumes of 30 GiB by default, and slots counted from free disk: 1 GiB and a fixed count
            # keep buckets writable on a small disk. Volume files grow as written, none is preallocated.
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=100",
            "-volume.preStopSeconds=0",
            # No usage reports to the internet from a developer's machine or CI.
            "-master.telemetry=false",
        ]

    def url(self, ports: Sequence[int]) -> str:
        return f"http://{LOOPBACK}:{ports[6]}"

    async def probe(self, ports: Sequence[int]) -> str | None:
        return await probes.s3_bucket_writable(self.url(ports), self.bucket, self.keys.access_key, self.keys.secret_key)

    def cleanup(self, ports: Sequence[int]) -> None:
        # weed puts a Unix socket per port in /tmp, whatever TMPDIR says (seaweedfs-filer-8888.sock,
        # ...), and a killed weed leaves them behind; they are ours because the ports were.
        for port in ports:
            for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):  # noqa: S108 - weed's choice
                socket_file.unlink(missing_ok=True)


async def _until_ready(process: ServerProcess, check: Callable[[], Awaitable[str | None]], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (reason := await check()) is not None:
        if process.returncode is not None or loop.time() >= deadline:
            raise StackError(f"{process.name} did not become ready: {process.log_summary()} (last check: {reason})")
        await asyncio.sleep(0.05)
