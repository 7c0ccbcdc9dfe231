"""Subject names: the public contract of the bus. An event's CloudEvents `type` equals its subject."""

from __future__ import annotations

import hashlib
from typing import Final

STREAM: Final = "WF"
STREAM_SUBJECTS: Final = ("edc.>", "wf.>")
DLQ_STREAM: Final = "WF_DLQ"
DLQ_PREFIX: Final = "dlq"
# Runs' output while they run, chunk by chunk: what a live log follow reads, whatever the backend.
LOG_STREAM: Final = "WF_LOGS"
LOG_PREFIX: Final = "logs"
# A log chunk's largest payload: small enough for any NATS server's max_payload.
LOG_CHUNK_BYTES: Final = 64 * 1024

EDC_PROVISION_REQUESTED: Final = "edc.provision.requested"
EDC_DEPROVISION_REQUESTED: Final = "edc.deprovision.requested"
EDC_CALLBACK_RECEIVED: Final = "edc.callback.received"
EDC_NEGOTIATION_FINALIZED: Final = "edc.negotiation.finalized"
EDC_NEGOTIATION_TERMINATED: Final = "edc.negotiation.terminated"
EDC_TRANSFER_STARTED: Final = "edc.transfer.started"
EDC_TRANSFER_COMPLETED: Final = "edc.transfer.completed"
EDC_TRANSFER_TERMINATED: Final = "edc.transfer.terminated"

DEPLOYMENT_REQUESTED: Final = "wf.deployment.requested"
DEPLOYMENT_READY: Final = "wf.deployment.ready"
DEPLOYMENT_FAILED: Final = "wf.deployment.failed"
DEPLOYMENT_DELETE_REQUESTED: Final = "wf.deployment.delete.requested"
DEPLOYMENT_DELETED: Final = "wf.deployment.deleted"

ASSET_REGISTERED: Final = "wf.asset.registered"
ASSET_REGISTRATION_FAILED: Final = "wf.asset.registration_failed"

ACCESS_GRANTED: Final = "wf.access.granted"
ACCESS_REVOKED: Final = "wf.access.revoked"

RUN_REQUESTED: Final = "wf.run.requested"
RUN_STOP_REQUESTED: Final = "wf.run.stop.requested"
RUN_QUEUED: Final = "wf.run.queued"
RUN_PENDING: Final = "wf.run.pending"
RUN_RUNNING: Final = "wf.run.running"
RUN_SUCCEEDED: Final = "wf.run.succeeded"
RUN_RETRYING: Final = "wf.run.retrying"
RUN_FAILED: Final = "wf.run.failed"
RUN_STOPPED: Final = "wf.run.stopped"
RUN_TIMED_OUT: Final = "wf.run.timed_out"

RESULT_PUBLISHED: Final = "wf.result.published"
RESULT_PUBLISH_FAILED: Final = "wf.result.publish_failed"
RESULT_EXPIRED: Final = "wf.result.expired"

CONSUMER_PROVISIONING_FAILED: Final = "wf.consumer.provisioning_failed"
CONSUMER_DEPROVISIONED: Final = "wf.consumer.deprovisioned"
CONSUMER_RELEASED: Final = "wf.consumer.released"


def dead_letter_subject(original: str) -> str:
    return f"{DLQ_PREFIX}.{original}"


def log_subject(run_id: str) -> str:
    """One subject per run; hashed, since run ids may hold characters (`.`, `*`, spaces) subjects may not."""
    return f"{LOG_PREFIX}.{hashlib.sha256(run_id.encode()).hexdigest()[:24]}"
