"""What one transfer process was given: provision, deployment, access grant, and the asset catalogue."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from schemas.documents import StatefulDocument, utcnow
from schemas.state_machine import machine


class ProvisionState(StrEnum):
    REQUESTED = "requested"
    DEPLOYING = "deploying"
    GRANTING = "granting"
    GRANTED = "granted"
    FAILED = "failed"
    DEPROVISIONING = "deprovisioning"
    DEPROVISIONED = "deprovisioned"


P = ProvisionState
PROVISION_MACHINE = machine(
    "provision",
    {P.REQUESTED},
    {
        P.REQUESTED: {P.DEPLOYING, P.FAILED, P.DEPROVISIONING},
        # Deploying covers the WorkflowApi's deployment and the asset's registration with it: the provisioning
        # hears of both through wf.asset.registered, the one event it waits for.
        P.DEPLOYING: {P.GRANTING, P.FAILED, P.DEPROVISIONING},
        P.GRANTING: {P.GRANTED, P.FAILED, P.DEPROVISIONING},
        P.GRANTED: {P.DEPROVISIONING},
        P.FAILED: {P.DEPROVISIONING},
        P.DEPROVISIONING: {P.DEPROVISIONED},
        P.DEPROVISIONED: set(),
    },
)

# A transfer whose access exists or is being built: it keeps its consumer's runs going.
LIVE: frozenset[str] = frozenset({P.REQUESTED, P.DEPLOYING, P.GRANTING, P.GRANTED})
# The provisioning has answered the connector (granted or failed), or the transfer is being torn down.
SETTLED: frozenset[str] = frozenset({P.GRANTED, P.FAILED, P.DEPROVISIONING, P.DEPROVISIONED})


class ProvisionDocument(StatefulDocument):
    """Keyed by the transfer process id: the unit EDC provisions and deprovisions."""

    collection = "provisions"
    machine = PROVISION_MACHINE

    # The connector whose request created it: only that connector may deprovision it or read its access.
    connector: str
    # The tenant (schemas.tenancy): connector and consumer together, the key of everything the consumer owns.
    consumer_id: str | None = None
    # The consumer as the contract agreement names it, for display.
    edc_consumer_id: str | None = None
    asset_id: str | None = None
    callback_address: str | None = None
    deprovision_requested: bool = False
    reason: str | None = None
    # How to answer the connector, in the generation of its provision request (ports.edc.ProvisionTarget).
    target: dict[str, Any] | None = None
    # The contract agreement of the transfer: known only once its negotiation is finalized.
    agreement_id: str | None = None
    edc_asset_id: str | None = None
    asset_version: int | None = None
    deployment_id: str | None = None
    failed_step: str | None = None
    # A deprovision request (not just the transfer's end) arrived: the connector waits for our callback.
    deprovision_callback: dict[str, Any] | None = None
    # The event whose provision callback is being made (written before the call): a handler that takes over from
    # one that died after calling asks the connector before calling again (handlers.provisioning.answering).
    provision_answering: str | None = None
    deprovision_reason: str | None = None
    # The deprovision request that callback answers, and the last request answered: a redelivered request is not
    # answered twice, one that came while (or after) the teardown finished without it is answered late.
    deprovision_request_id: str | None = None
    deprovision_answered: str | None = None
    # The request being answered (written before the callback): a handler that takes over from one that died or
    # stalled after calling back asks the connector before answering again.
    deprovision_answering: str | None = None


class DeploymentState(StrEnum):
    REQUESTED = "requested"
    DEPLOYING = "deploying"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


D = DeploymentState
DEPLOYMENT_MACHINE = machine(
    "deployment",
    {D.REQUESTED},
    {
        D.REQUESTED: {D.DEPLOYING, D.FAILED, D.DELETING},
        D.DEPLOYING: {D.READY, D.FAILED, D.DELETING},
        D.READY: {D.DELETING},
        D.FAILED: {D.DELETING},
        D.DELETING: {D.DELETED},
        D.DELETED: set(),
    },
)


class DeploymentDocument(StatefulDocument):
    collection = "deployments"
    machine = DEPLOYMENT_MACHINE

    transfer_process_id: str
    consumer_id: str
    asset_id: str | None = None
    asset_version: int | None = None
    site: str | None = None
    backend: str | None = None
    workflow_api_url: str | None = None
    reason: str | None = None
    # WorkflowAsset versions the consumer's WorkflowApi offers, as {asset_id, version}.
    registered_assets: list[dict[str, Any]] = Field(default_factory=list)


class AccessState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


ACCESS_MACHINE = machine(
    "access", {AccessState.ACTIVE}, {AccessState.ACTIVE: {AccessState.REVOKED}, AccessState.REVOKED: set()}
)


class AccessGrantDocument(StatefulDocument):
    """The consumer's token, stored only as its sha256: the plain token leaves once, via EDC."""

    collection = "access_grants"
    machine = ACCESS_MACHINE

    transfer_process_id: str
    consumer_id: str
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    workflow_api_url: str
    asset_ids: list[str] = Field(default_factory=list)


class ResultState(StrEnum):
    COLLECTING = "collecting"
    PUBLISHED = "published"
    FAILED = "failed"
    # Past the retention period: its objects are deleted, the document stays as the record.
    EXPIRED = "expired"


RESULT_MACHINE = machine(
    "result",
    {ResultState.COLLECTING},
    {
        ResultState.COLLECTING: {ResultState.PUBLISHED, ResultState.FAILED},
        ResultState.FAILED: {ResultState.COLLECTING, ResultState.EXPIRED},
        ResultState.PUBLISHED: {ResultState.EXPIRED},
        ResultState.EXPIRED: set(),
    },
)


class ResultDocument(StatefulDocument):
    collection = "results"
    machine = RESULT_MACHINE

    consumer_id: str
    manifest_key: str | None = None
    files: list[dict[str, Any]] = Field(default_factory=list)
    # The run's whole log (every attempt), archived beside its outputs; None when the run left none.
    log_key: str | None = None
    # Why publishing failed for good (state failed): the error of the event's last delivery.
    reason: str | None = None


class WorkflowAssetVersion(BaseModel):
    """One immutable version of a WorkflowAsset definition; a change makes a new version."""

    asset_id: str
    version: int = Field(ge=1)
    title: str
    description: str = ""
    edc_asset_ids: list[str] = Field(default_factory=list)
    image: str | None = None
    command: list[str] = Field(min_length=1)
    created_at: datetime = Field(default_factory=utcnow)
