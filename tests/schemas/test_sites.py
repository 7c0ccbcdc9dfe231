"""Placement over the seed's three sites: each asset lands where it fits and wastes least, or nowhere, saying why."""

from __future__ import annotations

from pathlib import Path

import pytest

from gxwf.definitions import load_assets, load_sites
from schemas.assets import Resources
from schemas.sites import NoSiteFits, place

DEPLOY = Path(__file__).parents[2] / "deploy"
SITES = load_sites(DEPLOY / "sites.example.yaml").sites
ASSETS = {a.id: a for a in [*load_assets(DEPLOY / "assets"), *load_assets(DEPLOY / "assets" / "gpu")]}


def test_the_gpu_asset_goes_to_the_gpu_site_and_the_cpu_asset_leaves_it_free() -> None:
    carla = ASSETS["carla-minimal"]
    assert place(carla.resources, carla.data_labels, SITES).name == "gpu-hpc"
    shell = ASSETS["shell-count"]
    assert place(shell.resources, shell.data_labels, SITES).name == "cloud"


def test_data_locality_picks_the_data_centric_site() -> None:
    assert place(Resources(cpu=8, memory="32Gi"), ["dlr-earth-observation"], SITES).name == "data-centric"


def test_no_site_fits_names_each_shortfall() -> None:
    with pytest.raises(NoSiteFits) as refused:
        place(Resources(cpu=100, memory="1Ti", gpu=2, gpu_type="nvidia-h100"), [], SITES)
    assert str(refused.value) == (
        "no site fits: gpu-hpc: 100 cpu > 64; memory 1Ti > 512Gi; gpu type nvidia-h100 not in nvidia-a100"
        " | cloud: 100 cpu > 16; memory 1Ti > 64Gi; 2 gpu > 0"
        " | data-centric: 100 cpu > 32; memory 1Ti > 128Gi; 2 gpu > 0"
        " | hpc-slurm: 100 cpu > 64; memory 1Ti > 512Gi"
    )


def test_a_site_whose_backend_is_not_enabled_does_not_fit() -> None:
    shell = ASSETS["shell-count"]
    with pytest.raises(NoSiteFits, match="cloud: backend kubernetes not enabled here"):
        place(shell.resources, [], SITES, available={"local"})


def test_this_machine_is_the_default_site() -> None:
    (site,) = load_sites(None).sites
    assert site.name == "local" and site.backend == "local" and site.capabilities.gpu == 0
