"""Both backends place inputs and name them to the workload by one rule set (adapters/input_layout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.input_layout import input_env, inside, linked_path, object_relative
from adapters.kubernetes_compute import manifests
from events.payloads.run import RunSpec, StagedInput
from ports.compute import RunOwner


@pytest.mark.parametrize("relative", ["../x", "a/../../x", "/etc/passwd", "", ".", "a/.."])
def test_nothing_lands_outside_its_directory_or_on_it(tmp_path: Path, relative: str) -> None:
    assert inside(tmp_path / "inputs", relative) is None


def test_a_link_already_there_does_not_lead_out(tmp_path: Path) -> None:
    root = tmp_path / "inputs"
    root.mkdir()
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    assert inside(root, "out/x") is None
    assert inside(root, "a/b.csv") == (root / "a" / "b.csv").resolve()


def test_where_objects_land_and_which_paths_are_linked() -> None:
    assert object_relative("file", "inputs/c/i1/", "inputs/c/i1/route.csv") == ""
    assert object_relative("directory", "inputs/c/i1/", "inputs/c/i1/a/b.csv") == "a/b.csv"
    assert linked_path("data/route.csv") == "data/route.csv"
    assert linked_path("/inputs/scenarios") is None
    assert linked_path(None) is None


def test_the_workload_sees_the_same_names_on_both_backends() -> None:
    inputs = [
        StagedInput(name=name, kind="file", input_id=f"i{n}", prefix=f"inputs/c/i{n}/")
        for n, name in enumerate(["route", "scenario.set-2", "_x"])
    ]
    spec = RunSpec(image="busybox:1.36", command=["true"], inputs=inputs)
    owner = RunOwner(consumer_id="c", asset_id="a", asset_version=1)
    job = manifests.job("r", spec, {}, attempt=1, owner=owner, image="busybox:1.36", stage_image="gxwf:test")
    (container,) = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == manifests.CONTAINER]
    on_kubernetes = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("GXWF_INPUT")}
    assert on_kubernetes == input_env(Path("/inputs"), ["route", "scenario.set-2", "_x"])
    assert set(on_kubernetes) == {"GXWF_INPUT_DIR", "GXWF_INPUT_ROUTE", "GXWF_INPUT_SCENARIO_SET_2", "GXWF_INPUT__X"}
