"""What every event of the flow means, with a valid example, by payload class (which names its subject).

The AsyncAPI document is generated from this table (through the FastStream app); a test fails when a payload
class that names a subject is missing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from events import subjects as s
from events.payloads.access import AccessGranted, AccessRevoked
from events.payloads.asset import AssetRegistered, AssetRegistrationFailed
from events.payloads.common import Payload
from events.payloads.consumer import ConsumerDeprovisioned, ConsumerProvisioningFailed, ConsumerReleased
from events.payloads.dead_letter import DeadLetter, HandlerError
from events.payloads.deployment import (
    DeploymentDeleted,
    DeploymentDeleteRequested,
    DeploymentFailed,
    DeploymentReady,
    DeploymentRequested,
)
from events.payloads.edc import (
    ContractAgreement,
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
from events.payloads.result import ResultExpired, ResultFile, ResultPublished, ResultPublishFailed
from events.payloads.run import (
    RunFailed,
    RunPending,
    RunQueued,
    RunRequested,
    RunRetrying,
    RunRunning,
    RunSpec,
    RunStopped,
    RunStopRequested,
    RunSucceeded,
    RunTimedOut,
)


@dataclass(frozen=True)
class EventSpec:
    """What AsyncAPI says about a payload class beyond its schema: a summary and a valid example."""

    payload: type[Payload]
    summary: str
    example: Payload
    # Only for messages that are not events on the WF stream (dead letters): events travel on their class's.
    address: str = ""

    @property
    def subject(self) -> str:
        return self.address or self.payload.subject

    @property
    def command(self) -> bool:
        return self.subject.endswith(".requested")


_TP = "b5c7d1e2-8f7a-4c1d-9e2b-3a4f5c6d7e8f"
_CONSUMER = "did:web:consumer.example.org"
_RUN = "run-01J9Z6Q0AB"
_DEPLOYMENT = "dep-b5c7d1e2"
_ASSET = "carla-minimal"
_API = "http://workflow-api.gxwf-c-7f3a.svc:8080"
_CALLBACK = "http://provider-connector:8181/api/management/callback"
_AT = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)

CATALOGUE: tuple[EventSpec, ...] = (
    EventSpec(
        EdcProvisionRequested,
        "A connector asks to provision a consumer's WorkflowApi (any EDC generation, normalised).",
        EdcProvisionRequested(
            connector="default",
            generation="control-plane-http",
            transfer_process_id=_TP,
            asset_id=_ASSET,
            callback_address=_CALLBACK,
            resource_definition_id="rd-1",
        ),
    ),
    EventSpec(
        EdcDeprovisionRequested,
        "A connector asks to tear down what a transfer was given.",
        EdcDeprovisionRequested(
            connector="default",
            generation="control-plane-http",
            transfer_process_id=_TP,
            callback_address=_CALLBACK,
        ),
    ),
    EventSpec(
        EdcCallbackReceived,
        "A connector event callback exactly as received (audit, dashboard).",
        EdcCallbackReceived(
            connector="default",
            edc_event_id="0f6c4e2a-1111-4c1d-9e2b-3a4f5c6d7e8f",
            edc_type="TransferProcessStarted",
            at=_AT,
            body={"type": "TransferProcessStarted", "payload": {"transferProcessId": _TP}},
        ),
    ),
    EventSpec(
        EdcNegotiationFinalized,
        "A contract for a WorkflowAsset was agreed: the consumer may be provisioned.",
        EdcNegotiationFinalized(
            connector="default",
            edc_event_id="0f6c4e2a-2222-4c1d-9e2b-3a4f5c6d7e8f",
            contract_negotiation_id="cn-1",
            counterparty_id=_CONSUMER,
            agreement=ContractAgreement(
                id="agreement-1",
                asset_id=_ASSET,
                consumer_id=_CONSUMER,
                provider_id="did:web:provider",
                signed_at=_AT,
            ),
        ),
    ),
    EventSpec(
        EdcNegotiationTerminated,
        "A contract negotiation ended without agreement.",
        EdcNegotiationTerminated(
            connector="default",
            edc_event_id="0f6c4e2a-3333-4c1d-9e2b-3a4f5c6d7e8f",
            contract_negotiation_id="cn-2",
            reason="policy not satisfied",
        ),
    ),
    *(
        EventSpec(
            payload,
            summary,
            payload(
                connector="default",
                edc_event_id=f"0f6c4e2a-44{i}4-4c1d-9e2b-3a4f5c6d7e8f",
                edc_type=edc_type,
                transfer_process_id=_TP,
                asset_id=_ASSET,
                side="PROVIDER",
            ),
        )
        for i, (payload, edc_type, summary) in enumerate(
            (
                (EdcTransferStarted, "TransferProcessStarted", "A transfer process started."),
                (EdcTransferCompleted, "TransferProcessCompleted", "A transfer process completed."),
                (
                    EdcTransferTerminated,
                    "TransferProcessTerminated",
                    "A transfer process was terminated: deprovision even without a deprovision request.",
                ),
            )
        )
    ),
    EventSpec(
        EdcDataFlowSignalled,
        "A Data Plane Signaling message from a connector's control plane (EDC 0.18 and later), with the data "
        "flow's state after it.",
        EdcDataFlowSignalled(
            connector="default",
            message_type="start",
            process_id=_TP,
            message_id="7d1c9f0e-2b8a-4f4e-9a51-0c3d2e1f4a5b",
            state="STARTING",
            profile="HttpData-PULL",
        ),
    ),
    EventSpec(
        DeploymentRequested,
        "Deploy a WorkflowApi for a consumer.",
        DeploymentRequested(deployment_id=_DEPLOYMENT, transfer_process_id=_TP, consumer_id=_CONSUMER, asset_id=_ASSET),
    ),
    EventSpec(
        DeploymentReady,
        "The consumer's WorkflowApi answers.",
        DeploymentReady(
            deployment_id=_DEPLOYMENT,
            transfer_process_id=_TP,
            consumer_id=_CONSUMER,
            asset_id=_ASSET,
            site="gpu-hpc",
            backend="kubernetes",
            workflow_api_url=_API,
        ),
    ),
    EventSpec(
        DeploymentFailed,
        "The WorkflowApi could not be deployed.",
        DeploymentFailed(
            deployment_id=_DEPLOYMENT,
            transfer_process_id=_TP,
            consumer_id=_CONSUMER,
            reason="exceeded quota: requests.nvidia.com/gpu",
        ),
    ),
    EventSpec(
        DeploymentDeleteRequested,
        "Command to the deployment handler: remove a consumer's WorkflowApi and everything around it.",
        DeploymentDeleteRequested(
            deployment_id=_DEPLOYMENT, transfer_process_id=_TP, consumer_id=_CONSUMER, reason="transfer completed"
        ),
    ),
    EventSpec(
        DeploymentDeleted,
        "A consumer's WorkflowApi and everything around it is gone.",
        DeploymentDeleted(deployment_id=_DEPLOYMENT, transfer_process_id=_TP, consumer_id=_CONSUMER),
    ),
    EventSpec(
        AssetRegistered,
        "The requested WorkflowAsset is available in the consumer's WorkflowApi.",
        AssetRegistered(
            transfer_process_id=_TP,
            consumer_id=_CONSUMER,
            deployment_id=_DEPLOYMENT,
            asset_id=_ASSET,
            asset_version=3,
        ),
    ),
    EventSpec(
        AssetRegistrationFailed,
        "The requested WorkflowAsset could not be registered.",
        AssetRegistrationFailed(
            transfer_process_id=_TP, consumer_id=_CONSUMER, asset_id=_ASSET, reason="unknown asset"
        ),
    ),
    EventSpec(
        AccessGranted,
        "Access information was sent to the connector; the consumer can use its WorkflowApi.",
        AccessGranted(
            transfer_process_id=_TP,
            consumer_id=_CONSUMER,
            workflow_api_url=_API,
            token_fingerprint="3f9a1c0e",  # noqa: S106 - a fingerprint, not a secret,
        ),
    ),
    EventSpec(
        AccessRevoked,
        "A consumer's token no longer opens its WorkflowApi.",
        AccessRevoked(transfer_process_id=_TP, consumer_id=_CONSUMER, reason="transfer terminated"),
    ),
    EventSpec(
        RunRequested,
        "Start a run of a WorkflowAsset (published by the WorkflowApi).",
        RunRequested(
            run_id=_RUN,
            consumer_id=_CONSUMER,
            transfer_process_id=_TP,
            asset_id=_ASSET,
            asset_version=3,
            parameters={"EPISODES": 10},
            inputs=["in-7d2c"],
            spec=RunSpec(image="ghcr.io/example/carla-minimal:1.2", command=["python", "train.py"], env={}),
        ),
    ),
    EventSpec(
        RunStopRequested,
        "Stop a run (published by the WorkflowApi).",
        RunStopRequested(run_id=_RUN, consumer_id=_CONSUMER, reason="cancelled by consumer"),
    ),
    EventSpec(
        RunQueued,
        "A run waits for a free slot of its consumer or site.",
        RunQueued(run_id=_RUN, consumer_id=_CONSUMER, position=2),
    ),
    EventSpec(
        RunPending,
        "A run was handed to a compute backend.",
        RunPending(run_id=_RUN, consumer_id=_CONSUMER, backend="local", site="local"),
    ),
    EventSpec(
        RunRunning,
        "A run's workload is executing.",
        RunRunning(run_id=_RUN, consumer_id=_CONSUMER, backend="local", handle="pid:4242"),
    ),
    EventSpec(
        RunSucceeded,
        "A run's workload exited with status 0.",
        RunSucceeded(run_id=_RUN, consumer_id=_CONSUMER, duration_seconds=12.5),
    ),
    EventSpec(
        RunRetrying,
        "An attempt failed in a way the run's retry policy covers; the run waits in the queue for the next.",
        RunRetrying(run_id=_RUN, consumer_id=_CONSUMER, attempt=2, reason="OOMKilled", retry_at=_AT),
    ),
    EventSpec(
        RunFailed,
        "A run's workload failed, or its process or pod vanished.",
        RunFailed(run_id=_RUN, consumer_id=_CONSUMER, exit_code=1, reason="exit status 1", duration_seconds=3.0),
    ),
    EventSpec(
        RunStopped,
        "A run was stopped and its workload is verified gone.",
        RunStopped(run_id=_RUN, consumer_id=_CONSUMER, reason="cancelled by consumer"),
    ),
    EventSpec(
        RunTimedOut,
        "A run exceeded its pending or running time limit and was killed.",
        RunTimedOut(run_id=_RUN, consumer_id=_CONSUMER, phase="running", limit_seconds=3600),
    ),
    EventSpec(
        ResultPublished,
        "A run's outputs and log are in the object store, listed in a manifest.",
        ResultPublished(
            run_id=_RUN,
            consumer_id=_CONSUMER,
            files=[ResultFile(name="model.onnx", size=1048576, sha256="0" * 64)],
            manifest_key=f"results/{_RUN}/manifest.json",
            log_key=f"results/{_RUN}/log.txt",
        ),
    ),
    EventSpec(
        ResultPublishFailed,
        "Publishing a run's outputs failed on its last try: the result is failed, and settled for the release.",
        ResultPublishFailed(run_id=_RUN, consumer_id=_CONSUMER, reason="object store unavailable"),
    ),
    EventSpec(
        ResultExpired,
        "A run's results outlived the retention period (GXWF_RESULT_RETENTION_DAYS) and were deleted.",
        ResultExpired(run_id=_RUN, consumer_id=_CONSUMER, objects=4, retention_days=30),
    ),
    EventSpec(
        ConsumerProvisioningFailed,
        "Provisioning a consumer ended in failure; the connector was told.",
        ConsumerProvisioningFailed(
            transfer_process_id=_TP, consumer_id=_CONSUMER, step="deployment", reason="no site has a GPU"
        ),
    ),
    EventSpec(
        ConsumerDeprovisioned,
        "Everything a transfer gave the consumer is torn down.",
        ConsumerDeprovisioned(transfer_process_id=_TP, consumer_id=_CONSUMER, reason="transfer completed"),
    ),
    EventSpec(
        ConsumerReleased,
        "The consumer has no live transfer left: what its ended runs left on a compute site is removed.",
        ConsumerReleased(consumer_id=_CONSUMER, transfer_process_id=_TP, site="gpu-hpc", runs=3),
    ),
)

DEAD_LETTER = EventSpec(
    DeadLetter,
    "An event a handler gave up on, with the handler, the error and the delivery count.",
    DeadLetter(
        original_subject=s.RUN_REQUESTED,
        original={"id": "e1", "type": s.RUN_REQUESTED, "data": {}},
        handler="jobs-run-requested",
        error=HandlerError(type="ValidationError", message="data.spec: Field required"),
        delivery_count=1,
        stream_sequence=42,
        failed_at=_AT,
    ),
    address=s.dead_letter_subject("{subject}"),
)

BY_SUBJECT: dict[str, EventSpec] = {spec.subject: spec for spec in CATALOGUE}


def spec_for(subject: str) -> EventSpec:
    try:
        return BY_SUBJECT[subject]
    except KeyError:
        raise KeyError(f"unknown subject {subject!r}: add its payload class to events/catalogue.py") from None
