"""EmbeddedStack: NATS JetStream, a MongoDB-wire server and S3, as local processes for development and tests."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from devstack.access import ADMIN, MONGO_APP, NatsUser
from devstack.binaries import find_binary
from devstack.credentials import StackCredentials
from devstack.endpoints import StackEndpoints
from devstack.errors import StackError
from devstack.launcher import RunningServer, launch, relaunch
from devstack.process import describe_exit
from devstack.restarts import RestartPolicy
from devstack.servers import NatsServer, SeaweedServer, SecantusServer, ServerSpec
from devstack.signals import StopSignals
from devstack.supervisor import supervise

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class EmbeddedStack:
    """The servers this project needs, started in parallel, each on free loopback ports.

    `state_dir` keeps each server's data (STATE_DIR/<server>/) and log (STATE_DIR/logs/<server>.log)
    across restarts; None means a temporary directory removed on stop. A given URL means that server is
    used as it is and not started. `ports` and `binaries`, keyed by role ("nats", "mongo", "s3"), pin a
    server's main port or program, for users who want fixed URLs and for tests.

    Every server it starts requires credentials, generated on the first start into STATE_DIR/credentials.json
    (mode 0600) and reused afterwards: NATS has the unrestricted user `admin` plus `nats_users` with their
    permissions, the MongoDB-wire server the users of devstack.access, S3 one identity. The endpoints carry them:
    URLs with `user:password@`, the S3 keys beside the S3 URL.

    While `wait_until_signalled` runs, a server that exits unasked is started again on its ports with its data,
    as `restarts` allows (None: a death ends the wait at once); each event is one line to `say` (stderr).
    """

    def __init__(
        self,
        state_dir: Path | None,
        *,
        nats_url: str | None = None,
        mongo_url: str | None = None,
        s3_endpoint: str | None = None,
        s3_bucket: str = "gxwf",
        ready_timeout: float = 60.0,
        ports: Mapping[str, int] | None = None,
        binaries: Mapping[str, str | Path] | None = None,
        nats_users: Sequence[NatsUser] = (),
        restarts: RestartPolicy | None = RestartPolicy(),  # noqa: B008 - frozen, so one shared default is safe
        say: Callable[[str], None] | None = None,
    ) -> None:
        if not _BUCKET_NAME.fullmatch(s3_bucket):
            raise StackError(
                f"invalid S3 bucket name {s3_bucket!r}: 3 to 63 lower-case letters, digits, dots and hyphens"
            )
        self._state_dir = state_dir
        self._nats_url = nats_url
        self._mongo_url = mongo_url
        self._s3_endpoint = s3_endpoint
        self._s3_bucket = s3_bucket
        self._ready_timeout = ready_timeout
        self._ports = dict(ports or {})
        self._binaries = {role: str(path) for role, path in (binaries or {}).items()}
        self._nats_users = tuple(nats_users)
        self._restarts = restarts
        self._say = say or _say
        self._executables: dict[str, str] = {}
        self._servers: list[RunningServer] = []
        self._endpoints: StackEndpoints | None = None
        self._active_dir: Path | None = None
        self._lock: IO[str] | None = None
        self.startup_seconds: float | None = None

    @property
    def state_dir(self) -> Path | None:
        """The directory in use: the given one, or while running the temporary one."""
        return self._active_dir or self._state_dir

    @property
    def endpoints(self) -> StackEndpoints | None:
        return self._endpoints

    async def __aenter__(self) -> StackEndpoints:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> StackEndpoints:
        if self._endpoints is not None:
            raise StackError("the stack is already running")
        began = time.monotonic()
        # Before any directory or process exists: a missing program is the most common first-run error.
        executables = {kind.role: self._binaries.get(kind.role) or find_binary(kind.program) for kind in self._kinds()}
        state_dir = self._open_state_dir()
        self._executables = executables
        tasks: list[asyncio.Task[RunningServer]] = []
        try:
            credentials = StackCredentials.load(state_dir)
            specs = self._specs(credentials)
            credentials.save()
            async with asyncio.TaskGroup() as group:
                for spec in specs:
                    coroutine = launch(
                        spec,
                        executable=executables[spec.role],
                        state_dir=state_dir,
                        ready_timeout=self._ready_timeout,
                        fixed_port=self._ports.get(spec.role),
                        mention_log=self._state_dir is not None,
                    )
                    tasks.append(group.create_task(coroutine, name=f"devstack-{spec.name}"))
        except BaseException as error:
            # A failed sibling cancels the servers still starting (they stop themselves); those that were
            # already up are stopped here.
            started = [task.result() for task in tasks if task.done() and not task.cancelled() and not task.exception()]
            await self._stop_servers(started)
            self._close_state_dir()
            raise _single(error) from None
        self._servers = [task.result() for task in tasks]
        self.startup_seconds = time.monotonic() - began
        self._endpoints = self._describe()
        return self._endpoints

    async def stop(self) -> None:
        """Stop the servers this stack started, last started first. Safe to call more than once."""
        servers, self._servers = self._servers, []
        self._endpoints = None
        try:
            await self._stop_servers(servers)
        finally:
            self._close_state_dir()

    async def wait_until_signalled(self, signals: StopSignals | None = None) -> None:
        """Return on SIGINT or SIGTERM; raise StackError if one of the servers dies meanwhile. `signals`: ones
        the caller installed before starting (so a signal during start-up counts), and removes itself."""
        if self._endpoints is None:
            raise StackError("the stack is not running")
        owned = signals is None
        if signals is None:
            signals = StopSignals()
            signals.install()
        if self._restarts is not None:
            try:
                await self._supervise_until_signalled(signals, self._restarts)
            finally:
                if owned:
                    signals.remove()
            return
        exits = {asyncio.ensure_future(server.process.wait()): server for server in self._servers}
        stop_requested = asyncio.ensure_future(signals.received.wait())
        try:
            await asyncio.wait({stop_requested, *exits}, return_when="FIRST_COMPLETED")
            # A signal wins over a death seen at the same moment: a service manager stopping us may
            # signal the servers too.
            if signals.received.is_set():
                return
            for exited, server in exits.items():
                if exited.done():
                    raise StackError(
                        f"{server.spec.name} {describe_exit(exited.result())} unexpectedly: "
                        f"{server.process.log_summary()}"
                    )
        finally:
            for waiter in (stop_requested, *exits):
                waiter.cancel()
            if owned:
                signals.remove()

    async def _supervise_until_signalled(self, signals: StopSignals, policy: RestartPolicy) -> None:
        """One supervisor per server, so that servers die and come back independently; the first that gives up
        ends the wait with its GaveUp (a StackError)."""
        state_dir = self.state_dir
        assert state_dir is not None  # running, so a directory is in use

        async def restart(previous: RunningServer) -> RunningServer:
            return await relaunch(
                previous,
                executable=self._executables[previous.spec.role],
                state_dir=state_dir,
                ready_timeout=self._ready_timeout,
                mention_log=self._state_dir is not None,
            )

        def replaced(successor: RunningServer) -> None:
            self._servers = [successor if server.spec is successor.spec else server for server in self._servers]
            self._endpoints = self._describe()

        supervisors = [
            asyncio.ensure_future(
                supervise(
                    server,
                    policy=policy,
                    restart=restart,
                    replaced=replaced,
                    say=self._say,
                    data_dir=str(state_dir / server.spec.name),
                )
            )
            for server in self._servers
        ]
        stop_requested = asyncio.ensure_future(signals.received.wait())
        try:
            await asyncio.wait({stop_requested, *supervisors}, return_when="FIRST_COMPLETED")
            if signals.received.is_set():
                return
            for supervisor in supervisors:
                if supervisor.done():
                    supervisor.result()
        finally:
            for waiter in (stop_requested, *supervisors):
                waiter.cancel()
            # A restart in progress stops what it had started before the stack's stop runs.
            await asyncio.gather(*supervisors, return_exceptions=True)

    def _kinds(self) -> list[type[ServerSpec]]:
        kinds: list[type[ServerSpec]] = []
        if self._nats_url is None:
            kinds.append(NatsServer)
        if self._mongo_url is None:
            kinds.append(SecantusServer)
        if self._s3_endpoint is None:
            kinds.append(SeaweedServer)
        return kinds

    def _specs(self, credentials: StackCredentials) -> list[ServerSpec]:
        specs: list[ServerSpec] = []
        if self._nats_url is None:
            specs.append(NatsServer(credentials, self._nats_users))
        if self._mongo_url is None:
            specs.append(SecantusServer(credentials))
        if self._s3_endpoint is None:
            specs.append(SeaweedServer(self._s3_bucket, credentials))
        return specs

    def _describe(self) -> StackEndpoints:
        running = {server.spec.role: server for server in self._servers}
        nats = running.get("nats")
        mongo = running.get("mongo")
        s3 = running.get("s3")
        monitor = None
        nats_url = str(self._nats_url)
        nats_users: dict[str, str] = {}
        if nats is not None and isinstance(nats.spec, NatsServer):
            monitor = nats.spec.monitor_url(nats.ports)
            nats_url = nats.spec.user_url(nats.ports, ADMIN)
            nats_users = {user.name: nats.spec.user_url(nats.ports, user.name) for user in nats.spec.users}
        mongo_url = str(self._mongo_url)
        if mongo is not None and isinstance(mongo.spec, SecantusServer):
            mongo_url = mongo.spec.user_url(mongo.ports, MONGO_APP)
        keys = s3.spec.keys if s3 is not None and isinstance(s3.spec, SeaweedServer) else None
        return StackEndpoints(
            nats=nats_url,
            nats_monitor=monitor,
            mongo=mongo_url,
            s3=s3.url if s3 is not None else str(self._s3_endpoint),
            s3_bucket=self._s3_bucket,
            pids={role: server.process.pid for role, server in running.items()},
            nats_users=nats_users,
            s3_credentials=keys,
        )

    def _open_state_dir(self) -> Path:
        if self._state_dir is None:
            self._active_dir = Path(tempfile.mkdtemp(prefix="gxwf-stack-"))
            return self._active_dir
        state_dir = self._state_dir.absolute()
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            lock = (state_dir / ".stack.lock").open("a+")
        except OSError as error:
            raise StackError(f"cannot use state directory {state_dir}: {error.strerror or error}") from None
        # Two stacks on one directory would run two servers on the same data files.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise StackError(f"state directory {state_dir} is in use by another stack (pid {holder})") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock
        return state_dir

    def _close_state_dir(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.truncate(0)
            self._lock.close()
            self._lock = None
        if self._active_dir is not None:
            shutil.rmtree(self._active_dir, ignore_errors=True)
            self._active_dir = None

    @staticmethod
    async def _stop_servers(servers: list[RunningServer]) -> None:
        for server in reversed(servers):
            await server.stop()


def _single(error: BaseException) -> BaseException:
    """The StackError inside a task group's failure, so callers see one plain message."""
    if isinstance(error, BaseExceptionGroup):
        found = [inner for inner in error.exceptions if isinstance(inner, StackError)]
        if found and len(found) == len(error.exceptions):
            if len(found) == 1:
                return found[0]
            return StackError("; ".join(str(inner) for inner in found))
    return error


def _say(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr, flush=True)
