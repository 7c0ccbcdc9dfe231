"""Which handler reacts to which subject: the composition root turns each row into a durable subscriber."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from events import subjects as s
from events.envelope import Envelope
from events.payloads.asset import AssetRegistered, AssetRegistrationFailed
from events.payloads.common import Payload
from events.payloads.consumer import ConsumerDeprovisioned
from events.payloads.deployment import (
    DeploymentDeleted,
    DeploymentDeleteRequested,
    DeploymentFailed,
    DeploymentReady,
    DeploymentRequested,
)
from events.payloads.edc import EdcDeprovisionRequested, EdcProvisionRequested, EdcTransferEvent
from events.payloads.result import ResultPublished, ResultPublishFailed
from events.payloads.run import (
    RunFailed,
    RunPending,
    RunRequested,
    RunRetrying,
    RunRunning,
    RunStopped,
    RunStopRequested,
    RunSucceeded,
    RunTimedOut,
)
from handlers.assets import register
from handlers.context import HandlerContext
from handlers.deployment import deploy, remove
from handlers.jobs import release, start, stop, submit, track
from handlers.provisioning import grant, request, teardown
from handlers.results import publish

HandlerFn = Callable[[Envelope[Any], HandlerContext], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    group: str
    durable: str
    subject: str
    payload: type[Payload]
    handle: HandlerFn
    # The handler acts on this process's compute site only: every site gets its own durable consumer (the
    # durable name with the site appended), so each site's handlers see every event and take their own.
    per_site: bool = False


SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription(
        "provisioning",
        "provisioning-requested",
        s.EDC_PROVISION_REQUESTED,
        EdcProvisionRequested,
        request.on_provision_requested,
    ),
    Subscription(
        "provisioning",
        "provisioning-deprovision-requested",
        s.EDC_DEPROVISION_REQUESTED,
        EdcDeprovisionRequested,
        teardown.on_deprovision_requested,
    ),
    Subscription(
        "provisioning",
        "provisioning-transfer-completed",
        s.EDC_TRANSFER_COMPLETED,
        EdcTransferEvent,
        teardown.on_transfer_ended,
    ),
    Subscription(
        "provisioning",
        "provisioning-transfer-terminated",
        s.EDC_TRANSFER_TERMINATED,
        EdcTransferEvent,
        teardown.on_transfer_ended,
    ),
    Subscription(
        "provisioning",
        "provisioning-deployment-failed",
        s.DEPLOYMENT_FAILED,
        DeploymentFailed,
        grant.on_deployment_failed,
    ),
    Subscription(
        "provisioning", "provisioning-asset-registered", s.ASSET_REGISTERED, AssetRegistered, grant.on_asset_registered
    ),
    Subscription(
        "provisioning",
        "provisioning-asset-failed",
        s.ASSET_REGISTRATION_FAILED,
        AssetRegistrationFailed,
        grant.on_asset_registration_failed,
    ),
    Subscription(
        "deployment",
        "deployment-requested",
        s.DEPLOYMENT_REQUESTED,
        DeploymentRequested,
        deploy.on_deployment_requested,
    ),
    Subscription(
        "provisioning",
        "provisioning-deployment-deleted",
        s.DEPLOYMENT_DELETED,
        DeploymentDeleted,
        teardown.on_deployment_deleted,
    ),
    Subscription(
        "deployment",
        "deployment-delete-requested",
        s.DEPLOYMENT_DELETE_REQUESTED,
        DeploymentDeleteRequested,
        remove.on_delete_requested,
    ),
    Subscription(
        "assets", "assets-deployment-ready", s.DEPLOYMENT_READY, DeploymentReady, register.on_deployment_ready
    ),
    Subscription("jobs", "jobs-run-requested", s.RUN_REQUESTED, RunRequested, submit.on_run_requested, per_site=True),
    Subscription("jobs", "jobs-start-pending", s.RUN_PENDING, RunPending, start.on_run_pending, per_site=True),
    Subscription(
        "jobs", "jobs-stop-requested", s.RUN_STOP_REQUESTED, RunStopRequested, stop.on_stop_requested, per_site=True
    ),
    Subscription("jobs", "jobs-track-running", s.RUN_RUNNING, RunRunning, track.on_run_fact),
    Subscription("jobs", "jobs-track-succeeded", s.RUN_SUCCEEDED, RunSucceeded, track.on_run_fact),
    Subscription("jobs", "jobs-track-retrying", s.RUN_RETRYING, RunRetrying, track.on_run_fact),
    Subscription("jobs", "jobs-track-failed", s.RUN_FAILED, RunFailed, track.on_run_fact),
    Subscription("jobs", "jobs-track-stopped", s.RUN_STOPPED, RunStopped, track.on_run_fact),
    Subscription("jobs", "jobs-track-timed-out", s.RUN_TIMED_OUT, RunTimedOut, track.on_run_fact),
    Subscription(
        "jobs",
        "jobs-consumer-deprovisioned",
        s.CONSUMER_DEPROVISIONED,
        ConsumerDeprovisioned,
        release.on_consumer_deprovisioned,
        per_site=True,
    ),
    Subscription(
        "jobs", "jobs-result-published", s.RESULT_PUBLISHED, ResultPublished, release.on_result_published, per_site=True
    ),
    Subscription(
        "jobs",
        "jobs-result-publish-failed",
        s.RESULT_PUBLISH_FAILED,
        ResultPublishFailed,
        release.on_result_publish_failed,
        per_site=True,
    ),
    Subscription(
        "results", "results-run-succeeded", s.RUN_SUCCEEDED, RunSucceeded, publish.on_run_finished, per_site=True
    ),
    Subscription("results", "results-run-failed", s.RUN_FAILED, RunFailed, publish.on_run_finished, per_site=True),
    Subscription("results", "results-run-stopped", s.RUN_STOPPED, RunStopped, publish.on_run_finished, per_site=True),
    Subscription(
        "results", "results-run-timed-out", s.RUN_TIMED_OUT, RunTimedOut, publish.on_run_finished, per_site=True
    ),
)

GROUPS: tuple[str, ...] = ("provisioning", "deployment", "assets", "jobs", "results")


def for_groups(groups: set[str] | None) -> list[Subscription]:
    return [sub for sub in SUBSCRIPTIONS if groups is None or sub.group in groups]
