"""The WorkflowApi deployment of one consumer on one compute site."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.payloads.common import Id, Payload, Reason, Url


class DeploymentRequested(Payload):
    subject: ClassVar[str] = "wf.deployment.requested"

    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
    asset_id: Id
    site: Id | None = Field(default=None, description="None: placement picks the site")


class DeploymentReady(Payload):
    subject: ClassVar[str] = "wf.deployment.ready"

    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
    asset_id: Id
    site: Id
    backend: str = Field(max_length=64)
    workflow_api_url: Url


class DeploymentFailed(Payload):
    subject: ClassVar[str] = "wf.deployment.failed"

    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
    reason: Reason
    retryable: bool = False


class DeploymentDeleteRequested(Payload):
    """Remove a consumer's WorkflowApi and everything around it (a deprovisioning, or a failed provisioning)."""

    subject: ClassVar[str] = "wf.deployment.delete.requested"

    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
    reason: Reason | None = None


class DeploymentDeleted(Payload):
    subject: ClassVar[str] = "wf.deployment.deleted"

    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
