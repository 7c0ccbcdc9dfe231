"""From a connector's provision request to access granted and back to deprovisioned, through the real ingress,
bus, store and handlers, with a simulated connector of each provisioner generation."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from nats.js import JetStreamContext

from events import subjects as s
from schemas.provisioning import AccessGrantDocument, DeploymentDocument
from tests.backbone.conftest import stream_events
from tests.provisioning.conftest import CONSUMER, TENANT, StartProvider


@pytest.mark.parametrize("edc_version", ["0.15", "0.18"])
async def test_provision_request_to_access_granted_and_back(
    start_provider: StartProvider, js: JetStreamContext, edc_version: str
) -> None:
    provider = await start_provider(edc_version)
    report = await provider.sim.story(asset_id="shell-count", consumer_id=CONSUMER, resend=2, callback_timeout=15)
    tp = report.transfer.id

    # The connector got the consumer's access once: the WorkflowApi URL and a token only we know the hash of.
    assert report.provisioned is not None, report.sent
    body = report.provisioned.body
    address = body.get("contentDataAddress") or body.get("dataAddress")
    properties = address["properties"]
    assert properties["baseUrl"] == provider.settings.workflow_api_url
    assert properties["authKey"] == "Authorization" and properties["authCode"].startswith("Bearer ")
    token = properties["authCode"].removeprefix("Bearer ")
    grant = await provider.store.get(AccessGrantDocument, tp)
    assert grant is not None and grant.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(await stream_events(js, "wf.>"))

    # ... and, after the transfer completed and the connector asked, everything was torn down.
    assert report.deprovisioned is not None
    provision = await provider.reaches(tp, "deprovisioned")
    states = [h.to for h in provision.history]
    assert states == ["requested", "deploying", "granting", "granted", "deprovisioning", "deprovisioned"]
    assert (provision.consumer_id, provision.edc_consumer_id) == (TENANT, CONSUMER)
    assert provision.asset_id == "shell-count" and provision.asset_version == 1
    grant = await provider.store.get(AccessGrantDocument, tp)
    assert grant is not None and grant.state == "revoked"
    deployment = await provider.store.get(DeploymentDocument, provision.deployment_id or "")
    assert deployment is not None and deployment.state == "deleted"
    assert deployment.registered_assets == [{"asset_id": "shell-count", "version": 1}]
    assert not list((provider.settings.state_dir / "consumers").glob("c-*"))
    assert (await provider.access(tp)).status_code == 409

    # Three provision requests, one of everything.
    types = Counter(e["type"] for e in await stream_events(js, "wf.>"))
    for subject in (
        s.DEPLOYMENT_REQUESTED,
        s.DEPLOYMENT_READY,
        s.ASSET_REGISTERED,
        s.ACCESS_GRANTED,
        s.ACCESS_REVOKED,
        s.DEPLOYMENT_DELETED,
        s.CONSUMER_DEPROVISIONED,
    ):
        assert types[subject] == 1, (subject, types)
    provisioned = [c for c in provider.sim.ledger.callbacks if c.action == "provision"]
    assert len(provisioned) == 1
