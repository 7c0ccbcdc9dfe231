"""The simulated connector's own data: agreements, transfer processes, and every callback it received."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

PROVIDER_ID = "did:web:provider.example"
T = TypeVar("T")


@dataclass
class Agreement:
    id: str
    asset_id: str
    consumer_id: str
    provider_id: str = PROVIDER_ID
    signed_at: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Transfer:
    id: str
    asset_id: str
    agreement: Agreement
    state: str = "INITIAL"
    type: str = "PROVIDER"
    resource_definition_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    provision_resource_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state_timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    # Data Plane Signaling: the registered data plane that was sent its start.
    dataplane_id: str | None = None


@dataclass
class Callback:
    """A provisioner callback as it arrived: which generation's path, for which transfer, with what body."""

    provisioner: str
    action: str
    transfer_process_id: str
    resource_id: str | None
    body: Any
    authorized: bool
    at: float = field(default_factory=time.time)
    # The Authorization header it came with (a data plane's OAuth2 bearer token), if any.
    authorization: str | None = None


class Ledger:
    def __init__(self) -> None:
        # Every PUT v4/dataplanes body as it came (the registered data planes are `dataplanes`, by id).
        self.dataplane_puts: list[dict[str, Any]] = []
        self.agreements: dict[str, Agreement] = {}
        self.transfers: dict[str, Transfer] = {}
        self.callbacks: list[Callback] = []
        # Data Plane Signaling: the registered data planes (by id), and every signaling callback.
        self.dataplanes: dict[str, Any] = {}
        self.signals: list[Any] = []
        # The consumer's current (endpoint, token) per transfer, from the data plane's answers and callbacks.
        self.access: dict[str, tuple[str, str]] = {}
        # Answer the first signaling callback of each transfer with 409, as a busy control plane does.
        self.conflict_first = False
        self._conflicted: set[str] = set()
        self._arrived = asyncio.Condition()

    def new_transfer(self, asset_id: str, consumer_id: str) -> Transfer:
        agreement = Agreement(id=f"agreement-{uuid.uuid4()}", asset_id=asset_id, consumer_id=consumer_id)
        transfer = Transfer(id=str(uuid.uuid4()), asset_id=asset_id, agreement=agreement)
        self.agreements[agreement.id] = agreement
        self.transfers[transfer.id] = transfer
        return transfer

    async def record(self, callback: Callback) -> None:
        async with self._arrived:
            self.callbacks.append(callback)
            transfer = self.transfers.get(callback.transfer_process_id)
            if transfer is not None and callback.authorized:
                transfer.state = "PROVISIONED" if callback.action == "provision" else "DEPROVISIONED"
            self._arrived.notify_all()

    async def wait_for(
        self, transfer_process_id: str, action: str | tuple[str, ...], timeout: float
    ) -> Callback | None:
        """The first authorized callback of this kind (or of any of these kinds) for the transfer, waiting up to
        `timeout` seconds."""
        actions = (action,) if isinstance(action, str) else action

        def found() -> Callback | None:
            return next(
                (
                    c
                    for c in self.callbacks
                    if c.transfer_process_id == transfer_process_id and c.action in actions and c.authorized
                ),
                None,
            )

        return await self._first(found, timeout)

    async def _first(self, found: Callable[[], T | None], timeout: float) -> T | None:
        """What `found` finds once something has arrived that it finds, or None after `timeout` seconds."""
        async with self._arrived:
            try:
                async with asyncio.timeout(timeout):
                    await self._arrived.wait_for(lambda: found() is not None)
            except TimeoutError:
                return None
            return found()

    def conflict_once(self, transfer_id: str) -> bool:
        """True (answer 409) for the first signaling callback of the transfer, when asked to."""
        if not self.conflict_first or transfer_id in self._conflicted:
            return False
        self._conflicted.add(transfer_id)
        return True

    async def signal(self, callback: Any) -> None:
        async with self._arrived:
            self.signals.append(callback)
            self._arrived.notify_all()

    async def wait_for_signal(self, transfer_id: str, kinds: tuple[str, ...], after: int, timeout: float) -> Any:
        """The first accepted signaling callback of these kinds for the transfer among those from index `after`."""

        def found() -> Any:
            return next(
                (
                    c
                    for c in self.signals[after:]
                    if c.transfer_id == transfer_id and c.kind in kinds and 200 <= c.status < 300
                ),
                None,
            )

        return await self._first(found, timeout)
