"""Attacks on what runs and where it may reach: forged run requests, reserved environment names, run pods' network
and disk, outputs archives, the sites config and the deployment handler's rights. Real NATS, MongoDB-wire and S3;
Kubernetes through the fake API server."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
import yaml
from nats.js import JetStreamContext

from adapters.kube_deployments import KubernetesDeploymentBackend
from adapters.kube_manifests import WorkflowApiImage, namespace_of
from adapters.kubernetes_compute import manifests as m
from adapters.mongo_store import MongoStateStore
from dashboard.auth import COOKIE
from dashboard.service import DashboardService
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec, StagedInput, spec_for_asset
from events.streams import StreamSettings, ensure_streams
from events.subjects import STREAM
from fakekube import FakeKubeServer, Scenario
from gxwf.errors import UserError
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from ports.deployments import DeploymentSpec
from schemas.assets import StoredAsset, WorkflowAssetDefinition
from schemas.inputs import InputDocument, InputState
from schemas.provisioning import ResultDocument, ResultState
from schemas.run import RunDocument, RunState
from schemas.sites import Site
from tests.backbone.conftest import (  # noqa: F401
    endpoints,
    eventually,
    finished,
    js,
    kube,
    nc,
    settings,
    store,
)
from tests.backbone.kube import kube_service
from tests.dashboard.conftest import OPERATOR as DASHBOARD_OPERATOR
from tests.dashboard.conftest import make_dashboard
from tests.edc_fixtures import OTHER_KEY, RunningIngress, ingress, registry  # noqa: F401

if TYPE_CHECKING:
    from devstack import StackEndpoints

REPO = Path(__file__).resolve().parents[2]
CONSUMER = "did:web:consumer.example:mallory"


def catalogue_only(base: Settings, **updates: Any) -> Settings:
    """Settings as in production: no ad-hoc runs (the test suite allows them for its other tests)."""
    return base.model_copy(update={"adhoc_runs": False, **updates})


async def publish_forged(stream: JetStreamContext, request: RunRequested) -> None:
    """What anyone who can publish on the bus can do: a wf.run.requested of their own making."""
    event = new_event(s.RUN_REQUESTED, request, subject=request.run_id, correlationid=request.run_id)
    await stream.publish(s.RUN_REQUESTED, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})


@pytest_asyncio.fixture
async def local_service(
    settings: Settings,  # noqa: F811
    endpoints: Endpoints,  # noqa: F811
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
) -> AsyncIterator[HandlerService]:
    svc = HandlerService(catalogue_only(settings), endpoints, groups=["jobs"])
    await svc.start()
    yield svc
    await svc.stop()


# ------------------------------------------------------------------ forged run requests (finding 3)


async def test_a_forged_run_request_runs_the_catalogues_command_never_its_own(
    local_service: HandlerService,
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    pwned = tmp_path / "pwned"
    honest = WorkflowAssetDefinition(id="honest", title="Honest", command=["/bin/sh", "-c", "echo catalogue"])
    stored, _ = await local_service.assets.apply(honest)
    forged_spec = RunSpec(command=["/bin/sh", "-c", f"touch {pwned}"], image="evil:latest", cpu=64)

    # A known asset with a forged command, image and resources: the catalogue's command runs.
    await publish_forged(
        js, RunRequested(run_id="forged-1", consumer_id=CONSUMER, asset_id=stored.asset_id, spec=forged_spec)
    )
    # An asset the catalogue does not know: nothing runs at all.
    await publish_forged(
        js, RunRequested(run_id="forged-2", consumer_id=CONSUMER, asset_id="no-such-asset", spec=forged_spec)
    )
    doc = await eventually(lambda: finished(store, "forged-1"))
    assert doc.state == RunState.SUCCEEDED
    assert doc.spec["command"] == ["/bin/sh", "-c", "echo catalogue"]
    assert doc.spec["image"] is None and doc.spec["cpu"] == honest.resources.cpu
    await asyncio.sleep(1.0)
    assert await store.get(RunDocument, "forged-2") is None, "a run of an unknown asset is refused"
    assert not pwned.exists(), "the forged command never ran"


async def test_a_forged_run_request_cannot_put_reserved_names_into_the_runs_environment(
    local_service: HandlerService,
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
) -> None:
    asset = WorkflowAssetDefinition.model_validate(
        {
            "id": "with-param",
            "title": "Takes a mode",
            "command": ["/bin/sh", "-c", 'echo "mode=$MODE preload=$LD_PRELOAD"'],
            "inputs": [{"kind": "parameter", "name": "MODE", "default": "fast"}],
        }
    )
    stored, _ = await local_service.assets.apply(asset)
    spec = spec_for_asset(stored, [])
    smuggled = {"LD_PRELOAD": "/tmp/evil.so", "PATH": "/tmp/evil", "GXWF_OUTPUT_DIR": "/etc"}
    await publish_forged(
        js,
        RunRequested(run_id="smuggle-1", consumer_id=CONSUMER, asset_id="with-param", parameters=smuggled, spec=spec),
    )
    await publish_forged(
        js,
        RunRequested(run_id="smuggle-2", consumer_id=CONSUMER, asset_id="with-param", parameters={}, spec=spec),
    )
    await eventually(lambda: finished(store, "smuggle-2"))
    assert await store.get(RunDocument, "smuggle-1") is None, "parameters the asset does not declare are refused"


async def test_a_forged_run_request_cannot_stage_another_consumers_input(
    local_service: HandlerService,
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
) -> None:
    asset = WorkflowAssetDefinition.model_validate(
        {
            "id": "reads-a-file",
            "title": "Reads a file",
            "command": ["/bin/sh", "-c", "cat inputs/data"],
            "inputs": [{"kind": "file", "name": "data", "path": "inputs/data"}],
        }
    )
    stored, _ = await local_service.assets.apply(asset)
    victim = InputDocument(
        id="in-victim",
        state=InputState.UPLOADING,
        consumer_id="did:web:victim.example",
        name="data",
        kind="file",
        prefix="inputs/victim/in-victim/",
    )
    await store.create(victim, event_id="test-upload")
    await store.transition(InputDocument, victim.id, InputState.READY, event_id="test-uploaded")
    stolen = StagedInput(name="data", kind="file", input_id=victim.id, prefix=victim.prefix, path="inputs/data")
    await publish_forged(
        js,
        RunRequested(
            run_id="steal-1",
            consumer_id=CONSUMER,
            asset_id=stored.asset_id,
            inputs=[victim.id],
            spec=spec_for_asset(stored, [stolen]),
        ),
    )
    own = victim.model_copy(update={"id": "in-own", "consumer_id": CONSUMER, "prefix": "inputs/own/in-own/"})
    await store.create(own, event_id="test-upload-own")
    await store.transition(InputDocument, own.id, InputState.READY, event_id="test-uploaded-own")
    mine = stolen.model_copy(update={"input_id": own.id, "prefix": own.prefix})
    await publish_forged(
        js,
        RunRequested(
            run_id="own-1",
            consumer_id=CONSUMER,
            asset_id=stored.asset_id,
            inputs=[own.id],
            spec=spec_for_asset(stored, [mine]),
        ),
    )
    await eventually(lambda: store.get(RunDocument, "own-1"))
    await asyncio.sleep(0.5)
    assert await store.get(RunDocument, "steal-1") is None, "another consumer's upload is never staged"


def test_an_asset_declaring_a_reserved_parameter_name_is_refused_at_load(tmp_path: Path) -> None:
    for name in ("LD_PRELOAD", "PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "HOME", "GXWF_RUN_ID", "gxwf_x"):
        with pytest.raises(ValueError, match="is reserved"):
            WorkflowAssetDefinition.model_validate(
                {"id": "sneaky", "title": "S", "command": ["true"], "inputs": [{"kind": "parameter", "name": name}]}
            )
    for name in ("LD_PRELOAD", "GXWF_RUN_ID"):
        definition = {
            "id": "sneaky",
            "title": "Sneaky",
            "command": ["true"],
            "inputs": [{"kind": "parameter", "name": name}],
        }
        path = tmp_path / "sneaky.yaml"
        path.write_text(yaml.safe_dump(definition))
        # Refused before any server is asked: the MongoDB URL is never used.
        env = {**os.environ, "GXWF_MONGO_URL": "mongodb://127.0.0.1:1/x"}
        result = subprocess.run(
            [sys.executable, "-m", "gxwf", "assets", "apply", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode != 0, result
        assert "Traceback" not in result.stderr
        assert f"parameter name {name!r} is reserved" in result.stderr, result.stderr


# ------------------------------------------------------------------ run pods on Kubernetes (finding 9)


@pytest_asyncio.fixture
async def kube_jobs(
    settings: Settings,  # noqa: F811
    endpoints: Endpoints,  # noqa: F811
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
    kube: FakeKubeServer,  # noqa: F811
) -> AsyncIterator[HandlerService]:
    svc = await kube_service(catalogue_only(settings, run_outputs_max_files=50), endpoints, kube, ["jobs", "results"])
    yield svc
    await svc.stop()


async def start_kube_run(service: HandlerService, js: JetStreamContext, kube: FakeKubeServer, run_id: str) -> None:  # noqa: F811
    assert kube.controller is not None
    asset = WorkflowAssetDefinition(id="render", title="Render", image="busybox:1.36", command=["sh", "-c", "true"])
    stored, _ = await service.assets.apply(asset)
    kube.controller.plan(Scenario("succeed", duration=3, log="ok"), labels={m.RUN_LABEL: m.run_label(run_id)})
    request = RunRequested(run_id=run_id, consumer_id=CONSUMER, asset_id="render", spec=spec_for_asset(stored, []))
    await publish_forged(js, request)


async def test_run_pods_reach_only_dns_and_the_object_store_and_are_limited_on_disk(
    kube_jobs: HandlerService,
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
    kube: FakeKubeServer,  # noqa: F811
    endpoints: Endpoints,  # noqa: F811
) -> None:
    await start_kube_run(kube_jobs, js, kube, "fenced")
    ns = m.namespace_name(CONSUMER)

    async def created() -> list[dict[str, Any]]:
        return kube.objects("jobs", ns)

    # Read while it exists: once its results are out, the run's Job is removed.
    (job,) = await eventually(created)
    await eventually(lambda: finished(store, "fenced"))
    store_url = httpx.URL(endpoints.s3)

    egress = [p["spec"] for p in kube.objects("networkpolicies", ns) if "Egress" in p["spec"]["policyTypes"]]
    assert egress, "no egress policy: run code may connect anywhere (cluster API, metadata service, internet)"
    (policy,) = egress
    assert policy["podSelector"] == {}, "every pod of the runs namespace"
    allowed: list[tuple[Any, Any]] = []
    for rule in policy["egress"]:
        assert rule.get("to"), "a rule without `to` allows every destination"
        assert rule.get("ports"), "a rule without `ports` allows every port"
        for peer in rule["to"]:
            for port in rule["ports"]:
                allowed.append((peer, (port["protocol"], port["port"])))
    dns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    dns["podSelector"] = {"matchLabels": {"k8s-app": "kube-dns"}}
    object_store = {"ipBlock": {"cidr": f"{store_url.host}/32"}}
    assert sorted(map(str, allowed)) == sorted(
        map(str, [(dns, ("UDP", 53)), (dns, ("TCP", 53)), (object_store, ("TCP", store_url.port))])
    )

    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    for volume in pod["volumes"]:
        if "emptyDir" in volume:
            assert volume["emptyDir"].get("sizeLimit") == "2Gi", f"{volume['name']} may fill the node's disk"
    (quota,) = kube.objects("resourcequotas", ns)
    assert quota["spec"]["hard"]["limits.ephemeral-storage"] == "50Gi"


def _archive_bomb(entries: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for i in range(entries):
            info = tarfile.TarInfo(f"d{i}")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        info = tarfile.TarInfo("result.csv")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"1,2"))
    return buffer.getvalue()


async def test_an_outputs_archive_past_the_limits_fails_its_results_with_the_reason(
    kube_jobs: HandlerService,
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
    kube: FakeKubeServer,  # noqa: F811
) -> None:
    import base64
    import json

    await start_kube_run(kube_jobs, js, kube, "bomb")
    ns = m.namespace_name(CONSUMER)

    def plan() -> dict[str, Any] | None:
        secret = kube.get("Secret", m.stage_secret_name("bomb", 1), ns)
        if secret is None:
            return None
        if "stringData" in secret:
            return dict(json.loads(secret["stringData"][m.STAGE_PLAN]))
        return dict(json.loads(base64.b64decode(secret["data"][m.STAGE_PLAN])))

    found = await kube.wait_for(plan, timeout=10)
    # The run's code holds the presigned PUT its stage-out step uses: it uploads an archive of its own making.
    async with httpx.AsyncClient() as client:
        answer = await client.put(
            found["outputs_url"], content=_archive_bomb(500), headers={"Content-Type": "application/x-tar"}
        )
    assert answer.status_code == 200

    async def settled() -> ResultDocument | None:
        doc = await store.get(ResultDocument, "bomb")
        return doc if doc is not None and doc.state in (ResultState.FAILED, ResultState.PUBLISHED) else None

    result = await eventually(settled, timeout=30)
    assert result.state == ResultState.FAILED
    assert "more than 50 entries" in (result.reason or "")
    assert not any(kube_jobs.settings.state_dir.rglob("d499")), "nothing of the archive stays on the handlers' disk"


# ------------------------------------------------------------------ config and rights (finding 9)


def test_an_empty_allowed_namespaces_is_a_config_error(
    settings: Settings,  # noqa: F811
    endpoints: Endpoints,  # noqa: F811
    tmp_path: Path,
) -> None:
    sites = {
        "sites": [
            {
                "name": "cluster",
                "backend": "kubernetes",
                "kubernetes": {"allowed_namespaces": []},
                "capabilities": {"cpu": 8, "memory": "32Gi"},
            }
        ]
    }
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump(sites))
    with pytest.raises(UserError) as refused:
        HandlerService(settings.model_copy(update={"sites_file": path}), endpoints)
    assert "allowed_namespaces" in str(refused.value)
    assert "every pod of the cluster" in str(refused.value)


def _deployment_handler_rules() -> list[dict[str, Any]]:
    docs = list(yaml.safe_load_all((REPO / "deploy/kustomize/base/rbac-deployment-handler.yaml").read_text()))
    (role,) = [d for d in docs if d and d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-handler")]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


async def test_the_deployment_handler_creates_only_what_its_rbac_grants_it(kube: FakeKubeServer) -> None:  # noqa: F811
    definition = WorkflowAssetDefinition(id="render", title="Render", image="busybox:1.36", command=["true"])
    asset = StoredAsset(asset_id="render", version=1, digest=definition.digest(), definition=definition)
    site = Site.model_validate(
        {
            "name": "cluster",
            "backend": "kubernetes",
            "kubernetes": {
                "kubeconfig": str(kube.kubeconfig_path),
                "ingress_class": "nginx",
                "ingress_domain": "gxwf.example.org",
            },
            "capabilities": {"cpu": 8, "memory": "32Gi"},
        }
    )
    spec = DeploymentSpec(f"dep-{uuid.uuid4().hex[:6]}", "tp-1", CONSUMER, asset, site)
    backend = KubernetesDeploymentBackend(WorkflowApiImage("img:1"), poll_seconds=0.05)
    try:
        await backend.deploy(spec)
    finally:
        await backend.close()
    rules = _deployment_handler_rules()
    for verb, resource in kube.calls:
        if verb not in ("create", "patch", "update"):
            continue
        plural, _, group = resource.partition(".")
        assert any(group in r["apiGroups"] and plural in r["resources"] and verb in r["verbs"] for r in rules), (
            f"the handler {verb}s {resource}, which its ClusterRole does not grant"
        )
    for rule in rules:
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    created = kube.namespaced_objects(namespace_of(spec))
    assert not [o for o in created if o["kind"] in ("Role", "RoleBinding")]
    (account,) = [o for o in created if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "workflow-api"]
    (deployment,) = [o for o in created if o["kind"] == "Deployment"]
    assert account.get("automountServiceAccountToken") is False
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


# ------------------------------------------------------------------ per-component secrets (finding 3)


def _rendered_overlay() -> list[dict[str, Any]]:
    kubectl = Path(sys.executable).parent / "kubectl"
    out = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "deploy/kustomize/overlays/example")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_a_compromised_component_holds_only_the_keys_it_uses() -> None:
    """What an attacker who runs code in a component's pod reads from its environment and its token mount."""
    objects = _rendered_overlay()
    secrets = {o["metadata"]["name"]: set(o.get("data") or {}) for o in objects if o["kind"] == "Secret"}
    readable: dict[str, set[str]] = {}
    tokens: dict[str, bool] = {}
    for deployment in [o for o in objects if o["kind"] == "Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        keys: set[str] = set()
        for container in pod["containers"]:
            for ref in container.get("envFrom", []):
                if "secretRef" in ref:
                    keys |= secrets[ref["secretRef"]["name"]]
        readable[deployment["metadata"]["name"]] = keys
        tokens[deployment["metadata"]["name"]] = pod.get("automountServiceAccountToken", True)
    s3 = {"GXWF_S3_ACCESS_KEY", "GXWF_S3_SECRET_KEY"}
    dashboard = {"GXWF_DASHBOARD_TOKEN", "GXWF_DASHBOARD_ADMIN_TOKEN"}
    management = {"GXWF_EDC_MANAGEMENT_API_KEY"}
    # With it, anyone can mint a token for any consumer's WorkflowApi and read that consumer's data.
    gateway = {"GXWF_GATEWAY_KEY"}
    assert readable["gxwf-edc-ingress"] == {"GXWF_EDC_API_KEY"}
    assert not readable["gxwf-dashboard"] & (management | {"GXWF_EDC_API_KEY"})
    assert not readable["gxwf-workflow-api"] & (management | dashboard | {"GXWF_EDC_API_KEY"})
    # The gateway holds the servers' credentials its per-consumer WorkflowApis do without, and the key it checks
    # their tokens with: nothing of the connector's or the dashboard's.
    assert gateway | s3 <= readable["gxwf-tenant-gateway"]
    assert not readable["gxwf-tenant-gateway"] & (management | dashboard | {"GXWF_EDC_API_KEY"})
    assert gateway <= readable["gxwf-handler-deployment"], "the deployment handler mints the tokens"
    for name, keys in readable.items():
        if name != "gxwf-handler-provisioning":
            assert not keys & management, f"{name} holds the connector's management API key"
        if name != "gxwf-dashboard":
            assert not keys & dashboard, f"{name} holds the dashboard's tokens"
        if name not in ("gxwf-handler-deployment", "gxwf-tenant-gateway"):
            assert not keys & gateway, f"{name} holds the tenant gateway's key"
        assert (
            name == "gxwf-dashboard"
            or name.startswith("gxwf-handler-")
            or name in ("gxwf-workflow-api", "gxwf-tenant-gateway")
            or (not keys & s3)
        ), f"{name} holds the S3 keys"
    api_users = {"gxwf-handler-deployment", "gxwf-handler-jobs"}
    assert {name for name, mounted in tokens.items() if mounted} == api_users


# ------------------------------------------------------------------ the EDC ingress under a flood (finding 10)


def _transfer_event(event_id: str) -> dict[str, Any]:
    payload = {
        "transferProcessId": "tp-flood",
        "callbackAddresses": [],
        "assetId": "carla-minimal",
        "type": "PROVIDER",
        "contractId": "agreement-1",
        "participantContextId": "provider",
        "protocol": "dataspace-protocol-http",
    }
    return {"id": event_id, "at": 1764063000123, "payload": payload, "type": "TransferProcessStarted"}


def _is_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(slug), body
    return body


async def test_a_full_event_stream_refuses_new_events_and_keeps_every_acknowledged_one(
    ingress: RunningIngress,  # noqa: F811
    js: JetStreamContext,  # noqa: F811
) -> None:
    info = await js.stream_info(STREAM)
    try:
        # A flood has filled the stream to its limit (a few KiB here).
        config = info.config
        config.max_bytes = 8 * 1024
        await js.update_stream(config)
        answers: list[httpx.Response] = []
        for i in range(60):
            answers.append(await ingress.post("/edc/events", _transfer_event(f"flood-{i}")))
            if answers[-1].status_code != 200:
                break
        refused = answers[-1]
        _is_problem(refused, 503, "bus-full")
        assert refused.headers["Retry-After"]
        acknowledged = sum(1 for a in answers if a.status_code == 200)
        state = (await js.stream_info(STREAM)).state
        # Nothing the ingress acknowledged was dropped to make room: the stream still starts at its first event.
        assert state.first_seq == 1
        assert state.messages >= acknowledged
    finally:
        await js.delete_stream(STREAM)
        await ensure_streams(js, StreamSettings(duplicate_window_seconds=info.config.duplicate_window or 600))


@pytest_asyncio.fixture
async def limited_ingress(
    stack: StackEndpoints,
    js: JetStreamContext,  # noqa: F811
    settings: Settings,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
) -> AsyncIterator[RunningIngress]:
    edc = EdcSettings(_env_file=None, edc_rate_limit_per_second=1, edc_rate_limit_burst=3)  # type: ignore[call-arg]
    service = IngressService(
        edc,
        registry(),
        nats_url=stack.nats,
        mongo_url=stack.mongo,
        mongo_database=settings.mongo_database,
        host="127.0.0.1",
        port=0,
    )
    url = await service.start()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield RunningIngress(url, service, client)
    await service.stop()


async def test_one_connector_flooding_the_ingress_is_limited_and_does_not_limit_another(
    limited_ingress: RunningIngress,
) -> None:
    flood = [await limited_ingress.post("/edc/events", _transfer_event(f"f-{i}")) for i in range(10)]
    limited = [a for a in flood if a.status_code == 429]
    assert len(limited) >= 6, [a.status_code for a in flood]
    body = _is_problem(limited[0], 429, "too-many-requests")
    assert "default" in body["detail"]
    assert int(limited[0].headers["Retry-After"]) >= 1
    other = await limited_ingress.post("/edc/events", _transfer_event("o-1"), key=OTHER_KEY, header="X-Other-Key")
    assert other.status_code == 200, other.text


# ------------------------------------------------------------------ dashboard logins and sessions (finding 10)


@pytest_asyncio.fixture
async def board(
    stack: StackEndpoints,
    settings: Settings,  # noqa: F811
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
) -> AsyncIterator[DashboardService]:
    service = make_dashboard(stack, settings, session_seconds=1.5, login_failures_per_address=3)
    await service.start()
    yield service
    await service.stop()


async def _logged_in(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=10) as browser:
        done = await browser.post("/login", data={"token": DASHBOARD_OPERATOR, "next": "/overview"})
        assert done.status_code == 303
        cookie = browser.cookies.get(COOKIE)
        assert cookie and DASHBOARD_OPERATOR not in cookie
        return cookie


async def _with_cookie(url: str, cookie: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=10, cookies={COOKIE: cookie}) as thief:
        return (await thief.get("/overview", headers={"accept": "application/json"})).status_code


async def test_a_session_cookie_is_refused_after_logout_and_after_expiry(board: DashboardService) -> None:
    url = str(board.url)
    cookie = await _logged_in(url)
    assert await _with_cookie(url, cookie) == 200
    async with httpx.AsyncClient(base_url=url, timeout=10, cookies={COOKIE: cookie}) as browser:
        assert (await browser.post("/logout")).status_code == 303
    # Someone who copied the cookie before the logout (or a browser that kept it) is not let in.
    assert await _with_cookie(url, cookie) == 401

    expiring = await _logged_in(url)
    assert await _with_cookie(url, expiring) == 200
    await asyncio.sleep(2.0)
    assert await _with_cookie(url, expiring) == 401, "a session ends at its expiry"


async def test_guessing_dashboard_tokens_is_rate_limited(board: DashboardService) -> None:
    async with httpx.AsyncClient(base_url=str(board.url), timeout=10) as guesser:
        answers = [await guesser.post("/login", data={"token": f"guess-{i:020d}", "next": "/tail"}) for i in range(5)]
        assert [a.status_code for a in answers[:3]] == [401, 401, 401]
        limited = answers[3]
        _is_problem(limited, 429, "too-many-requests")
        assert int(limited.headers["Retry-After"]) >= 1
        # Bearer guesses count too, and while limited even the right token waits.
        bearer = await guesser.get("/overview", headers={"authorization": "Bearer another-guess-0000000000"})
        assert bearer.status_code == 429
        right = await guesser.post("/login", data={"token": DASHBOARD_OPERATOR, "next": "/tail"})
        assert right.status_code == 429
