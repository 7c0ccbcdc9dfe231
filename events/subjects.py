"""Stream names and subject helpers of the bus.

Each event's subject is spelled once, on its payload class (`RunPending.subject`); the constants below are
those same strings under the names the entry points, dashboard and tests have always used."""

from __future__ import annotations

import hashlib
from typing import Final

from events.payloads.access import AccessGranted, AccessRevoked
from events.payloads.asset import AssetRegistered, AssetRegistrationFailed
from events.payloads.consumer import ConsumerDeprovisioned, ConsumerProvisioningFailed, ConsumerReleased
from events.payloads.deployment import (
    DeploymentDeleted,
    DeploymentDeleteRequested,
    DeploymentFailed,
    DeploymentReady,
    DeploymentRequested,
)
from events.payloads.edc import (
    EdcCallbackReceived,
    EdcDataFlowSignalled,
    EdcDeprovisionRequested,
    EdcNegotiationFinalized,
    EdcNegotiationTerminated,
    EdcProvisionRequested,
    EdcTransferCompleted,
    EdcTransferStarted,
    EdcTransferTerminated,
)
from events.payloads.result import ResultExpired, ResultPublished, ResultPublishFailed
from events.payloads.run import (
    RunFailed,
    RunPending,
    RunQueued,
    RunRequested,
    RunRetrying,
    RunRunning,
    RunStopped,
    RunStopRequested,
    RunSucceeded,
    RunTimedOut,
)

STREAM: Final = "WF"
STREAM_SUBJECTS: Final = ("edc.>", "wf.>")
DLQ_STREAM: Final = "WF_DLQ"
DLQ_PREFIX: Final = "dlq"
# Runs' output while they run, chunk by chunk: what a live log follow reads, whatever the backend.
LOG_STREAM: Final = "WF_LOGS"
LOG_PREFIX: Final = "logs"
# A log chunk's largest payload: small enough for any NATS server's max_payload.
LOG_CHUNK_BYTES: Final = 64 * 1024

EDC_PROVISION_REQUESTED: Final = EdcProvisionRequested.subject
EDC_DEPROVISION_REQUESTED: Final = EdcDeprovisionRequested.subject
EDC_CALLBACK_RECEIVED: Final = EdcCallbackReceived.subject
EDC_NEGOTIATION_FINALIZED: Final = EdcNegotiationFinalized.subject
EDC_NEGOTIATION_TERMINATED: Final = EdcNegotiationTerminated.subject
EDC_TRANSFER_STARTED: Final = EdcTransferStarted.subject
EDC_TRANSFER_COMPLETED: Final = EdcTransferCompleted.subject
EDC_TRANSFER_TERMINATED: Final = EdcTransferTerminated.subject
EDC_DATAFLOW_SIGNALLED: Final = EdcDataFlowSignalled.subject

DEPLOYMENT_REQUESTED: Final = DeploymentRequested.subject
DEPLOYMENT_READY: Final = DeploymentReady.subject
DEPLOYMENT_FAILED: Final = DeploymentFailed.subject
DEPLOYMENT_DELETE_REQUESTED: Final = DeploymentDeleteRequested.subject
DEPLOYMENT_DELETED: Final = DeploymentDeleted.subject

ASSET_REGISTERED: Final = AssetRegistered.subject
ASSET_REGISTRATION_FAILED: Final = AssetRegistrationFailed.subject

ACCESS_GRANTED: Final = AccessGranted.subject
ACCESS_REVOKED: Final = AccessRevoked.subject

RUN_REQUESTED: Final = RunRequested.subject
RUN_STOP_REQUESTED: Final = RunStopRequested.subject
RUN_QUEUED: Final = RunQueued.subject
RUN_PENDING: Final = RunPending.subject
RUN_RUNNING: Final = RunRunning.subject
RUN_SUCCEEDED: Final = RunSucceeded.subject
RUN_RETRYING: Final = RunRetrying.subject
RUN_FAILED: Final = RunFailed.subject
RUN_STOPPED: Final = RunStopped.subject
RUN_TIMED_OUT: Final = RunTimedOut.subject

RESULT_PUBLISHED: Final = ResultPublished.subject
RESULT_PUBLISH_FAILED: Final = ResultPublishFailed.subject
RESULT_EXPIRED: Final = ResultExpired.subject

CONSUMER_PROVISIONING_FAILED: Final = ConsumerProvisioningFailed.subject
CONSUMER_DEPROVISIONED: Final = ConsumerDeprovisioned.subject
CONSUMER_RELEASED: Final = ConsumerReleased.subject


def dead_letter_subject(original: str) -> str:
    return f"{DLQ_PREFIX}.{original}"


def log_subject(run_id: str) -> str:
    """One subject per run; hashed, since run ids may hold characters (`.`, `*`, spaces) subjects may not."""
    return f"{LOG_PREFIX}.{hashlib.sha256(run_id.encode()).hexdigest()[:24]}"
