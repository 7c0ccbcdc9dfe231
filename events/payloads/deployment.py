"""The WorkflowApi deployment of one consumer on one compute site."""

from __future__ import annotations

from pydantic import Field

from events.payloads.common import Id, Payload, Reason, Url


class DeploymentRequested(Payload):
    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
    asset_id: Id
    site: Id | None = Field(default=None, description="None: placement picks the site")


class DeploymentReady(Payload):
    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
    asset_id: Id
    site: Id
    backend: str = Field(max_length=64)
    workflow_api_url: Url


class DeploymentFailed(Payload):
    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
    reason: Reason
    retryable: bool = False


class DeploymentDeleteRequested(Payload):
    """Remove a consumer's WorkflowApi and everything around it (a deprovisioning, or a failed provisioning)."""

    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
    reason: Reason | None = None


class DeploymentDeleted(Payload):
    deployment_id: Id
    transfer_process_id: Id
    consumer_id: Id
