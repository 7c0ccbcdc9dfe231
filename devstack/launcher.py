"""Starting one server: free ports, the process, and waiting until it does its job."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import StackError
from devstack.netports import reserve_ports
from devstack.process import ServerProcess, describe_exit
from devstack.servers import ServerSpec

# Ports are free when chosen but released before the server binds them; losing that race is retried
# with new ports. Three losses in a row mean something else is wrong.
_BIND_ATTEMPTS = 3
_POLL_SECONDS = 0.1
_ADDRESS_IN_USE = re.compile(r"address already in use|EADDRINUSE|errno 98", re.IGNORECASE)


@dataclass(frozen=True)
class RunningServer:
    spec: ServerSpec
    process: ServerProcess
    ports: list[int]

    @property
    def url(self) -> str:
        return self.spec.url(self.ports)

    async def stop(self) -> None:
        await self.process.terminate(self.spec.stop_grace)
        self.spec.cleanup(self.ports)


class _AddressInUse(Exception):
    pass


async def launch(
    spec: ServerSpec,
    *,
    executable: str,
    state_dir: Path,
    ready_timeout: float,
    fixed_port: int | None = None,
    mention_log: bool = True,
) -> RunningServer:
    """Start `spec` and return once its readiness check passes; on any failure no process is left."""
    home = state_dir / spec.name
    log_path = state_dir / "logs" / f"{spec.name}.log"
    where = f" (log: {log_path})" if mention_log else ""
    home.mkdir(parents=True, exist_ok=True)
    await spec.provision(executable, home, log_path, ready_timeout)
    for attempt in range(1, _BIND_ATTEMPTS + 1):
        if fixed_port is None:
            ports = reserve_ports(spec.port_count)
        else:
            ports = [fixed_port, *reserve_ports(spec.port_count - 1, exclude=(fixed_port,))]
        spec.prepare(home, ports)
        process = await ServerProcess.spawn(
            spec.name,
            spec.argv(executable, home, ports),
            cwd=home,
            log_path=log_path,
            death_signal=spec.death_signal,
        )
        server = RunningServer(spec, process, ports)
        try:
            await _wait_ready(server, ready_timeout, where)
        except _AddressInUse:
            spec.cleanup(ports)
            if fixed_port is None and attempt < _BIND_ATTEMPTS:
                continue
            raise StackError(
                f"{spec.name} {describe_exit(process.returncode or 0)} during start-up: {process.log_summary()}{where}"
            ) from None
        except BaseException:
            # Also on cancellation: a sibling server failed, or the user pressed Ctrl-C while waiting.
            await server.stop()
            raise
        return server
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _wait_ready(server: RunningServer, timeout: float, where: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    name, process = server.spec.name, server.process
    exited = asyncio.ensure_future(process.wait())
    last_check = "no check completed"
    try:
        while True:
            check = asyncio.ensure_future(server.spec.probe(server.ports))
            await asyncio.wait({check, exited}, timeout=max(0.0, deadline - loop.time()), return_when="FIRST_COMPLETED")
            if not check.done():
                check.cancel()
            elif (failure := check.exception()) is not None:
                last_check = repr(failure)
            elif (reason := check.result()) is None:
                return
            else:
                last_check = reason
            if exited.done():
                if _ADDRESS_IN_USE.search(process.log_text()):
                    raise _AddressInUse
                raise StackError(
                    f"{name} {describe_exit(exited.result())} during start-up: {process.log_summary()}{where}"
                )
            if loop.time() >= deadline:
                raise StackError(
                    f"{name} did not become ready within {timeout:g}s: {process.log_summary()}"
                    f" (last check: {last_check}){where}"
                )
            await asyncio.wait({exited}, timeout=_POLL_SECONDS)
    finally:
        exited.cancel()


class PortTaken(StackError):
    """A restart found one of the server's own ports in use by another program: its clients cannot reach it."""


async def relaunch(
    previous: RunningServer,
    *,
    executable: str,
    state_dir: Path,
    ready_timeout: float,
    mention_log: bool = True,
) -> RunningServer:
    """Start the server of `previous`, which has exited, again on the same ports with the same data directory:
    its clients keep their URLs. On any failure no process is left."""
    spec, ports = previous.spec, previous.ports
    home = state_dir / spec.name
    log_path = state_dir / "logs" / f"{spec.name}.log"
    where = f" (log: {log_path})" if mention_log else ""
    # A killed server leaves behind what cleanup removes (SeaweedFS's sockets).
    spec.cleanup(ports)
    spec.prepare(home, ports)
    process = await ServerProcess.spawn(
        spec.name, spec.argv(executable, home, ports), cwd=home, log_path=log_path, death_signal=spec.death_signal
    )
    server = RunningServer(spec, process, ports)
    try:
        await _wait_ready(server, ready_timeout, where)
    except _AddressInUse:
        spec.cleanup(ports)
        raise PortTaken(
            f"{spec.name}: one of its ports ({', '.join(map(str, ports))}) is taken by another program:"
            f" {process.log_summary()}{where}"
        ) from None
    except BaseException:
        await server.stop()
        raise
    return server
