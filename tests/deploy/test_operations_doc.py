"""docs/operations.md says what the manifests do: its autoscaling table is the ScaledObjects', the chart keys it
cites are the NATS chart's, and its readers-before-writers rollout applies every handler with what it mounts
before any HTTP service."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.test_manifests import (
    HANDLERS,
    HTTP_COMPONENTS,
    OVERLAY,
    REPO,
    Manifest,
    _by_name,
    _containers,
    _kustomize,
    _of_kind,
    _selects,
)
from tests.deploy.test_nats_values import CHART_VALUES

DOC = REPO / "docs" / "operations.md"


@pytest.fixture(scope="module")
def overlay() -> list[Manifest]:
    return _kustomize(OVERLAY)


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def _table(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header row starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_autoscaling_table_is_the_scaled_objects(overlay: list[Manifest], doc: str) -> None:
    scaled = _by_name(overlay, "ScaledObject")
    rows = _table(doc, "| group | min | max |")
    assert [row[0] for row in rows] == list(HANDLERS)
    for group, low, high, lag, *_ in rows:
        spec = scaled[f"gxwf-handler-{group}"]["spec"]
        assert (int(low), int(high)) == (spec["minReplicaCount"], spec["maxReplicaCount"]), group
        assert {t["metadata"]["lagThreshold"] for t in spec["triggers"]} == {lag}, group


def test_the_chart_keys_the_doc_cites_exist(doc: str) -> None:
    chart: dict[str, Any] = yaml.safe_load(CHART_VALUES.read_text())
    section = doc[doc.index("## A NATS cluster") : doc.index("## A MongoDB replica set")]
    cited = set(
        re.findall(r"`((?:config|container|podTemplate|podDisruptionBudget|promExporter)(?:\.[\w.]+)?)`", section)
    )
    assert len(cited) > 10
    for key in cited:
        node: Any = chart
        for part in key.split("."):
            if node == {}:
                break  # a free-form map of the chart (`env`, `merge`, `topologySpreadConstraints`)
            assert isinstance(node, dict) and part in node, f"{key}: the chart has no {part!r}"
            node = node[part]


def test_readers_before_writers_applies_each_handler_with_what_it_mounts(overlay: list[Manifest], doc: str) -> None:
    (selector_text,) = re.findall(r"kubectl apply -f release\.yaml -l '([^']+)'", doc)
    key, values = re.fullmatch(r"(\S+) notin \(([^)]*)\)", selector_text).groups()  # type: ignore[union-attr]
    selector = {"matchExpressions": [{"key": key, "operator": "NotIn", "values": values.split(",")}]}
    first = [obj for obj in overlay if _selects(selector, obj["metadata"].get("labels", {}))]
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in first}
    for handler in HANDLERS:
        assert ("Deployment", f"gxwf-handler-{handler}") in names
        assert ("ScaledObject", f"gxwf-handler-{handler}") in names
    for component in HTTP_COMPONENTS:
        assert ("Deployment", f"gxwf-{component}") not in names, component
    # What the handlers mount exists when they roll: the generated ConfigMaps and Secrets are in the first batch.
    for deployment in _of_kind(first, "Deployment"):
        for container in _containers(deployment):
            for ref in container["envFrom"]:
                ((kind, target),) = ref.items()
                wanted = "ConfigMap" if kind == "configMapRef" else "Secret"
                assert (wanted, target["name"]) in names, f"{deployment['metadata']['name']}: {target['name']}"
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
