"""The control plane on Kubernetes at scale, as an operator installs it: handler replicas spread over zones and
nodes, a disruption budget for every Deployment with more than one replica, and KEDA ScaledObjects that scale
each handler Deployment on the lag of the JetStream consumers its group reads. KEDA's objects are checked
against KEDA's own CRD schemas (tests/deploy/keda), and the consumers they measure against the durable names the
code declares, so a renamed durable fails here instead of silently freezing a Deployment's scale."""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from events.streams import StreamSettings, stream_configs
from handlers import subscriptions
from tests.deploy import crd_schema
from tests.deploy.test_manifests import (
    BASE,
    HANDLERS,
    HTTP_COMPONENTS,
    OVERLAY,
    REPO,
    Manifest,
    _by_name,
    _ident,
    _kustomize,
    _of_kind,
    _pod_spec,
    _selects,
    _template_labels,
)

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
MONITORING_PARAMETERS = {"natsServerMonitoringEndpoint", "account"}


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


def _config(objects: Iterable[Manifest]) -> dict[str, str]:
    (config,) = [m for name, m in _by_name(objects, "ConfigMap").items() if name.startswith("gxwf-config-")]
    data: dict[str, str] = config["data"]
    return data


def _handler_group(deployment: Manifest) -> str:
    """The group a handler Deployment runs: its `gxwf handlers run --only GROUP`."""
    (container,) = _pod_spec(deployment)["containers"]
    args: list[str] = container["args"]
    assert args[:2] == ["handlers", "run"], _ident(deployment)
    only = [args[i + 1] for i, arg in enumerate(args) if arg == "--only"]
    assert len(only) == 1, f"{_ident(deployment)}: one group per Deployment, so one ScaledObject scales it"
    return only[0]


def _subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or token not in ("*", have[index]):
            return False
    return len(want) == len(have)


def _stream_of(subject: str) -> str:
    (stream,) = [
        config.name
        for config in stream_configs(StreamSettings())
        if any(_subject_matches(pattern, subject) for pattern in config.subjects or ())
    ]
    assert stream is not None
    return stream


def expected_consumers(group: str, site: str | None) -> set[tuple[str, str]]:
    """(stream, consumer) of every durable consumer a `--only GROUP` process of this compute site reads."""
    return {(_stream_of(sub.subject), sub.durable_on(site)) for sub in subscriptions.for_groups({group})}


def trigger_problems(objects: list[Manifest]) -> list[str]:
    """What is wrong with the lag triggers of the rendered objects: each handler Deployment needs one ScaledObject
    whose triggers measure exactly the consumers its group reads, on the stream they read."""
    problems: list[str] = []
    site = _config(objects).get("GXWF_COMPUTE_SITE") or None
    deployments = _by_name(objects, "Deployment")
    authentications = _by_name(objects, "TriggerAuthentication")
    for scaled in _of_kind(objects, "ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]
        deployment = deployments.get(target["name"])
        if deployment is None or target.get("kind", "Deployment") != "Deployment":
            problems.append(f"{_ident(scaled)}: scales {target}, not a Deployment here")
            continue
        expected = expected_consumers(_handler_group(deployment), site)
        measured: set[tuple[str, str]] = set()
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] != "nats-jetstream":
                problems.append(f"{_ident(scaled)}: a {trigger['type']} trigger")
                continue
            meta = trigger["metadata"]
            measured.add((meta["stream"], meta["consumer"]))
            threshold = meta.get("lagThreshold", "")
            if not threshold.isdigit() or int(threshold) < 1:
                problems.append(f"{_ident(scaled)}: {meta['consumer']}: lagThreshold {threshold!r}")
            reference = trigger.get("authenticationRef", {}).get("name")
            if reference not in authentications:
                problems.append(f"{_ident(scaled)}: {meta['consumer']}: no TriggerAuthentication {reference!r}")
        for stream, consumer in sorted(measured - expected):
            problems.append(f"{_ident(scaled)}: measures {consumer} on stream {stream}, which no handler reads")
        for stream, consumer in sorted(expected - measured):
            problems.append(f"{_ident(scaled)}: does not measure {consumer} on stream {stream}")
    return problems


# ------------------------------------------------------------------------------------------- KEDA schemas


def test_the_vendored_crds_are_keda_s_and_carry_their_licence() -> None:
    schemas = crd_schema.crd_schemas()
    assert set(schemas) == {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}
    for path in crd_schema.CRD_DIR.glob("*.yaml"):
        head = path.read_text().splitlines()[:3]
        assert "github.com/kedacore/keda" in head[0] and "Apache License, Version 2.0" in head[2], path.name
    assert "Apache License" in (crd_schema.CRD_DIR / "LICENSE").read_text()


def test_keda_objects_are_valid_against_keda_crds(overlay: list[Manifest]) -> None:
    custom = [obj for obj in overlay if crd_schema.is_custom(obj)]
    assert sorted(_ident(obj) for obj in custom) == sorted(
        [*(f"ScaledObject/gxwf-handler-{h}" for h in HANDLERS), "TriggerAuthentication/gxwf-nats-monitoring"]
    )
    errors = [error for obj in custom for error in crd_schema.validation_errors(obj)]
    assert not errors, "\n".join(errors)


def _broken(overlay: list[Manifest], mutate: str) -> Manifest:
    if mutate.startswith("auth-"):
        obj = copy.deepcopy(_by_name(overlay, "TriggerAuthentication")["gxwf-nats-monitoring"])
        if mutate == "auth-misspelt-field":
            obj["spec"]["configMapTargetRefs"] = obj["spec"].pop("configMapTargetRef")
        elif mutate == "auth-missing-key":
            del obj["spec"]["configMapTargetRef"][0]["key"]
        return obj
    obj = copy.deepcopy(_by_name(overlay, "ScaledObject")["gxwf-handler-jobs"])
    spec = obj["spec"]
    if mutate == "misspelt-field":
        # The HPA's name for it: KEDA would prune it and keep its default minimum.
        spec["minReplicas"] = spec.pop("minReplicaCount")
    elif mutate == "number-not-string":
        spec["triggers"][0]["metadata"]["lagThreshold"] = 100
    elif mutate == "min-above-max":
        spec["minReplicaCount"] = spec["maxReplicaCount"] + 1
    elif mutate == "unknown-fallback-behavior":
        spec["fallback"]["behavior"] = "keepCurrent"
    elif mutate == "no-triggers":
        spec["triggers"] = []
    elif mutate == "wrong-api-version":
        obj["apiVersion"] = "keda.sh/v1beta1"
    else:
        raise AssertionError(mutate)
    return obj


@pytest.mark.parametrize(
    "mutate",
    [
        "misspelt-field",
        "number-not-string",
        "min-above-max",
        "unknown-fallback-behavior",
        "no-triggers",
        "wrong-api-version",
        "auth-misspelt-field",
        "auth-missing-key",
    ],
)
def test_crd_validation_rejects_a_broken_keda_object(overlay: list[Manifest], mutate: str) -> None:
    bad = _broken(overlay, mutate)
    assert crd_schema.validation_errors(bad), f"{mutate} was not caught"


# ---------------------------------------------------------------------------------------- autoscaling


def test_the_base_needs_no_keda(base: list[Manifest]) -> None:
    """KEDA is optional: without the autoscaling component the base holds no KEDA object and fixed replicas."""
    assert not [obj for obj in base if crd_schema.is_custom(obj)]
    for name, deployment in _by_name(base, "Deployment").items():
        assert deployment["spec"]["replicas"] >= 2, name


def test_the_component_on_the_base_alone_names_no_real_nats(tmp_path: Path) -> None:
    """An overlay that adds the component but forgets where NATS monitoring is gets a host that never resolves
    (KEDA reports it at once), like the base's other placeholders."""
    component = BASE.parent / "components" / "autoscaling"
    (tmp_path / "kustomization.yaml").write_text(
        # kustomize takes relative paths only.
        yaml.safe_dump(
            {"resources": [os.path.relpath(BASE, tmp_path)], "components": [os.path.relpath(component, tmp_path)]}
        )
    )
    objects = _kustomize(tmp_path)
    (monitoring,) = [m for n, m in _by_name(objects, "ConfigMap").items() if n.startswith("gxwf-nats-monitoring-")]
    assert monitoring["data"]["natsServerMonitoringEndpoint"].rpartition(":")[0].endswith(".invalid")
    assert trigger_problems(objects) == []
    for name, deployment in _by_name(objects, "Deployment").items():
        assert ("replicas" in deployment["spec"]) is not name.startswith("gxwf-handler-"), name


def test_each_handler_deployment_has_one_scaled_object(overlay: list[Manifest]) -> None:
    deployments = _by_name(overlay, "Deployment")
    scaled = _of_kind(overlay, "ScaledObject")
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in scaled]
    assert sorted(targets) == sorted(f"gxwf-handler-{h}" for h in HANDLERS)
    # The HTTP services read no consumer: nothing to measure a lag of.
    assert not {f"gxwf-{c}" for c in HTTP_COMPONENTS} & set(targets)
    for obj in scaled:
        spec = obj["spec"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert spec["scaleTargetRef"].get("apiVersion", "apps/v1") == "apps/v1"
        assert spec["scaleTargetRef"]["name"] in deployments
        # Two at least: a drain or a crash leaves one replica at work and a standby for the lease singletons.
        assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], _ident(obj)
        # When the lag cannot be read, never fewer than the minimum and never fewer than there are.
        assert spec["fallback"]["replicas"] == spec["minReplicaCount"]
        assert spec["fallback"]["behavior"] == "currentReplicasIfHigher"
        names = [t["name"] for t in spec["triggers"]]
        assert len(names) == len(set(names)), f"{_ident(obj)}: trigger names must be unique"
        down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        assert down["stabilizationWindowSeconds"] >= 60


def test_no_group_scales_beyond_what_its_consumers_can_feed(overlay: list[Manifest]) -> None:
    """A durable consumer hands out at most max_ack_pending events at once, each replica takes up to
    GXWF_HANDLER_CONCURRENCY of them: replicas beyond the quotient would only wait."""
    from events.delivery import DeliveryPolicy
    from gxwf.settings import Settings

    default = Settings.model_fields["handler_concurrency"].default
    policy = DeliveryPolicy(concurrency=int(_config(overlay).get("GXWF_HANDLER_CONCURRENCY", default)))
    ceiling = policy.max_ack_pending // policy.concurrency
    for obj in _of_kind(overlay, "ScaledObject"):
        assert obj["spec"]["maxReplicaCount"] <= ceiling, f"{_ident(obj)}: more than {ceiling} replicas would idle"


def test_lag_triggers_measure_exactly_the_durables_the_code_declares(overlay: list[Manifest]) -> None:
    assert trigger_problems(overlay) == []
    site = _config(overlay)["GXWF_COMPUTE_SITE"]
    jobs = _by_name(overlay, "ScaledObject")["gxwf-handler-jobs"]
    consumers = {t["metadata"]["consumer"] for t in jobs["spec"]["triggers"]}
    # A handler of its own site's runs reads a consumer of that site.
    assert f"jobs-start-pending-{site}" in consumers
    assert "jobs-track-running" in consumers


def test_a_renamed_durable_fails_the_check(overlay: list[Manifest], monkeypatch: pytest.MonkeyPatch) -> None:
    (start,) = [sub for sub in subscriptions.SUBSCRIPTIONS if sub.durable == "jobs-start-pending"]
    renamed = dataclasses.replace(start, durable="jobs-start-pending-v2")
    table = tuple(renamed if sub is start else sub for sub in subscriptions.SUBSCRIPTIONS)
    monkeypatch.setattr(subscriptions, "SUBSCRIPTIONS", table)
    problems = trigger_problems(overlay)
    assert any("jobs-start-pending-cluster" in p and "which no handler reads" in p for p in problems), problems
    assert any("does not measure jobs-start-pending-v2-cluster" in p for p in problems), problems


def test_a_site_renamed_in_the_config_alone_fails_the_check(overlay: list[Manifest]) -> None:
    """The per-site consumers carry GXWF_COMPUTE_SITE: an overlay that renames the site must rename them too."""
    objects = copy.deepcopy(overlay)
    _config(objects)["GXWF_COMPUTE_SITE"] = "zone-a"
    problems = trigger_problems(objects)
    assert any("does not measure jobs-start-pending-zone-a" in p for p in problems), problems


def test_the_triggered_durables_are_the_documented_ones() -> None:
    """Every consumer an autoscaler measures is a receive operation of asyncapi.yaml (`durable:subject`)."""
    document = yaml.safe_load((REPO / "asyncapi.yaml").read_text())
    documented = {key.split(":")[0] for key, op in document["operations"].items() if op["action"] == "receive"}
    declared = {sub.durable for group in HANDLERS for sub in subscriptions.for_groups({group})}
    assert declared == documented


def test_trigger_authentication_reads_the_nats_monitoring_settings(overlay: list[Manifest]) -> None:
    (auth,) = _of_kind(overlay, "TriggerAuthentication")
    maps = _by_name(overlay, "ConfigMap")
    refs = auth["spec"]["configMapTargetRef"]
    assert {ref["parameter"] for ref in refs} == MONITORING_PARAMETERS
    values: dict[str, Any] = {}
    for ref in refs:
        assert ref["name"] in maps, f"no ConfigMap {ref['name']}"
        values[ref["parameter"]] = maps[ref["name"]]["data"][ref["key"]]
    endpoint = values["natsServerMonitoringEndpoint"]
    # host:port without a scheme (KEDA adds it); the headless Service, whose pods KEDA addresses by name.
    host, _, port = endpoint.rpartition(":")
    assert "://" not in endpoint and port.isdigit() and host
    assert "headless" in host and not host.endswith(".invalid")
    assert values["account"] == "$G"
    for trigger in (t for s in _of_kind(overlay, "ScaledObject") for t in s["spec"]["triggers"]):
        # Set once, in the TriggerAuthentication: a value in the trigger would take precedence over it.
        assert not MONITORING_PARAMETERS & set(trigger["metadata"]), trigger["name"]


# ------------------------------------------------------------------------------ disruption and spreading


def _replica_floor(objects: list[Manifest], deployment: Manifest) -> int:
    """The fewest replicas the Deployment runs: its count, or its ScaledObject's minimum."""
    for scaled in _of_kind(objects, "ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]:
            return int(scaled["spec"]["minReplicaCount"])
    return int(deployment["spec"].get("replicas", 1))


def test_every_multi_replica_deployment_has_a_disruption_budget_that_lets_drains_through(
    rendered: list[Manifest],
) -> None:
    budgets = _of_kind(rendered, "PodDisruptionBudget")
    deployments = _of_kind(rendered, "Deployment")
    for deployment in deployments:
        floor = _replica_floor(rendered, deployment)
        assert floor >= 2, _ident(deployment)
        covering = [b for b in budgets if _selects(b["spec"]["selector"], _template_labels(deployment))]
        assert len(covering) == 1, f"{_ident(deployment)}: {len(covering)} PodDisruptionBudgets"
        (budget,) = covering
        selector = budget["spec"]["selector"]
        others = [_ident(d) for d in deployments if d is not deployment and _selects(selector, _template_labels(d))]
        assert not others, f"{_ident(budget)} also covers {others}"
        spec = budget["spec"]
        # One pod may always be evicted, even at the fewest replicas: a drain never hangs on us.
        allowed = spec["maxUnavailable"] if "maxUnavailable" in spec else floor - spec["minAvailable"]
        assert allowed >= 1, _ident(budget)
        # ... and never more than one at a time for a handler, however far it was scaled out.
        if deployment["metadata"]["name"].startswith("gxwf-handler-"):
            assert spec.get("maxUnavailable") == 1, _ident(budget)
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_replicas_spread_over_zones_and_nodes_without_blocking_scheduling(rendered: list[Manifest]) -> None:
    deployments = _of_kind(rendered, "Deployment")
    for deployment in deployments:
        constraints = _pod_spec(deployment).get("topologySpreadConstraints", [])
        assert sorted(c["topologyKey"] for c in constraints) == sorted([ZONE, HOSTNAME]), _ident(deployment)
        for constraint in constraints:
            where = f"{_ident(deployment)} {constraint['topologyKey']}"
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway", where
            assert constraint["maxSkew"] == 1, where
            assert _selects(constraint["labelSelector"], _template_labels(deployment)), where
            others = [
                _ident(d)
                for d in deployments
                if d is not deployment and _selects(constraint["labelSelector"], _template_labels(d))
            ]
            assert not others, f"{where} also counts the pods of {others}"
            assert constraint.get("matchLabelKeys") == ["pod-template-hash"], where


def test_handler_rollouts_add_a_replica_before_removing_one(rendered: list[Manifest]) -> None:
    for name, deployment in _by_name(rendered, "Deployment").items():
        strategy = deployment["spec"].get("strategy", {})
        assert strategy.get("type") == "RollingUpdate", name
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, name
        assert strategy["rollingUpdate"]["maxSurge"] >= 1, name
