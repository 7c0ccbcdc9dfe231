"""deploy/nats/values.yaml, the values for the official NATS Helm chart that docs/operations.md installs: every key
is one the chart has (checked against the chart's own values.yaml, vendored in nats-chart/), and the cluster it
describes is the one the example overlay's settings and KEDA's triggers expect."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from events.streams import StreamSettings
from tests.deploy.test_manifests import DEPLOY, OVERLAY, Manifest, _by_name, _kustomize

VALUES = DEPLOY / "nats" / "values.yaml"
CHART_VALUES = Path(__file__).resolve().parent / "nats-chart" / "values.yaml"
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _quantity(text: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)", text)
    assert match, f"not a binary quantity: {text!r}"
    return int(match.group(1)) * _UNITS[match.group(2)]


def unknown_keys(ours: Any, chart: Any, where: str = "") -> list[str]:
    """Key paths of `ours` the chart does not have. An empty map in the chart (`merge: {}`, `env: {}`,
    `topologySpreadConstraints: {}`) takes any keys."""
    if not isinstance(ours, dict) or not isinstance(chart, dict) or not chart:
        return []
    problems: list[str] = []
    for key, value in ours.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in chart:
            problems.append(path)
        else:
            problems += unknown_keys(value, chart[key], path)
    return problems


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return loaded


@pytest.fixture(scope="module")
def overlay() -> list[Manifest]:
    return _kustomize(OVERLAY)


def test_every_key_is_one_the_chart_has(values: dict[str, Any]) -> None:
    chart = yaml.safe_load(CHART_VALUES.read_text())
    assert unknown_keys(values, chart) == []
    # The check itself: a misspelt key is named.
    assert unknown_keys({"config": {"jetstream": {"fileStorage": {}}}}, chart) == ["config.jetstream.fileStorage"]


def test_a_three_node_jetstream_cluster_on_persistent_volumes(values: dict[str, Any]) -> None:
    config = values["config"]
    assert config["cluster"]["enabled"] is True
    assert config["cluster"]["replicas"] == 3
    store = config["jetstream"]["fileStore"]
    assert config["jetstream"]["enabled"] is True and store["enabled"] is True and store["pvc"]["enabled"] is True
    # JetStream reserves each stream's byte limit at creation: the volume must hold the limited streams with room
    # left for the dead letters, which have no byte limit.
    streams = StreamSettings()
    assert _quantity(store["pvc"]["size"]) >= 1.5 * (streams.max_bytes + streams.log_max_bytes)
    assert values["podDisruptionBudget"]["enabled"] is True
    assert values["podTemplate"]["topologySpreadConstraints"]["kubernetes.io/hostname"]["maxSkew"] == 1


def test_the_overlay_and_keda_expect_this_cluster(values: dict[str, Any], overlay: list[Manifest]) -> None:
    maps = _by_name(overlay, "ConfigMap")
    (config,) = [m["data"] for name, m in maps.items() if name.startswith("gxwf-config-")]
    (monitoring,) = [m["data"] for name, m in maps.items() if name.startswith("gxwf-nats-monitoring-")]
    # One copy of each stream per server.
    assert int(config["GXWF_STREAM_REPLICAS"]) == values["config"]["cluster"]["replicas"]
    # The release `nats` in namespace `nats`: its client Service and its headless Service's monitoring port.
    assert config["GXWF_NATS_URL"] == "nats://nats.nats.svc:4222"
    port = values["config"]["monitor"]["port"]
    assert values["config"]["monitor"]["enabled"] is True
    assert monitoring["natsServerMonitoringEndpoint"] == f"nats-headless.nats.svc.cluster.local:{port}"
    assert config["GXWF_NATS_MONITOR_URL"] == f"http://nats-headless.nats.svc.cluster.local:{port}"
