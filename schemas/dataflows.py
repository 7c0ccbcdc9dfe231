"""A Data Plane Signaling (DPS) data flow: the state a connector's control plane sees of one transfer.

Keyed by the transfer process id (DPS's processId = dataFlowId), beside the ProvisionDocument that does the
work. Terminal states never change; any live state may go to TERMINATED.
"""

from __future__ import annotations

from enum import StrEnum

from schemas.documents import StatefulDocument
from schemas.state_machine import machine


class DataFlowState(StrEnum):
    PREPARED = "PREPARED"
    STARTING = "STARTING"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"


F = DataFlowState
DATAFLOW_MACHINE = machine(
    "dataflow",
    {F.PREPARED, F.STARTING},
    {
        F.PREPARED: {F.TERMINATED},
        # Suspend and resume act on the consumer's token, which exists once started.
        F.STARTING: {F.STARTED, F.COMPLETED, F.TERMINATED},
        F.STARTED: {F.SUSPENDED, F.COMPLETED, F.TERMINATED},
        F.SUSPENDED: {F.STARTED, F.COMPLETED, F.TERMINATED},
        F.COMPLETED: set(),
        F.TERMINATED: set(),
    },
)


class DataFlowDocument(StatefulDocument):
    collection = "dataflows"
    machine = DATAFLOW_MACHINE

    # The connector whose control plane started it: only that connector may see or change it.
    connector: str
    # The control plane's signaling base the callbacks go to (checked against the connector's at the start).
    signaling_url: str | None = None
    dataset_id: str | None = None
    agreement_id: str | None = None
    counter_party_id: str | None = None
    # sha256 of the prepare or start message that created it (but its messageId): a re-sent one is told from another.
    message_sha256: str | None = None
    # Why the flow ended (terminate reason, or the failure the `errored` callback named).
    reason: str | None = None
