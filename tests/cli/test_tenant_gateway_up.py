"""`gxwf up` with a Kubernetes site: a tenant gateway beside the shared WorkflowApi, its key generated once into the
state directory (mode 0600), and the deployment handlers told both; without such a site, none."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gxwf.commands.tenant_gateway import KEY_FILE, start_for_up
from gxwf.runtime import Endpoints
from gxwf.settings import Settings
from schemas import tenant_gateway
from tests.backbone.conftest import endpoints, settings

__all__ = ["endpoints", "settings"]

pytestmark = pytest.mark.servers


def kubernetes_site(tmp_path: Path) -> Path:
    path = tmp_path / "sites.json"
    site = {
        "name": "cloud",
        "backend": "kubernetes",
        "kubernetes": {"in_cluster": True},
        "capabilities": {"cpu": 1, "memory": "1Gi"},
    }
    path.write_text(json.dumps({"sites": [site]}))
    return path


async def test_a_kubernetes_site_gets_a_tenant_gateway_and_a_kept_key(
    settings: Settings, endpoints: Endpoints, tmp_path: Path
) -> None:
    unset = settings.model_copy(
        update={"sites_file": kubernetes_site(tmp_path), "gateway_key": None, "tenant_gateway_url": None}
    )
    told, service = await start_for_up(unset, endpoints)
    assert service is not None and service.url is not None
    try:
        key_file = unset.state_dir / KEY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert told.gateway_key is not None and told.gateway_key.get_secret_value() == key_file.read_text().strip()
        assert told.tenant_gateway_url == service.url
        async with httpx.AsyncClient(base_url=service.url) as http:
            assert (await http.get("/readyz")).status_code == 200
            forged = tenant_gateway.mint("not-the-key", "dep-x")
            refused = await http.get("/v1/documents/runs/x", headers={"Authorization": f"Bearer {forged}"})
            assert refused.status_code == 401
    finally:
        await service.stop()
    # Restarted: the same key, so tokens minted before stay valid; a configured key and URL win.
    again, second = await start_for_up(unset, endpoints)
    assert second is not None
    await second.stop()
    assert again.gateway_key == told.gateway_key
    chosen = unset.model_copy(update={"gateway_key": SecretStr("chosen"), "tenant_gateway_url": "http://gw.example"})
    kept, third = await start_for_up(chosen, endpoints)
    assert third is not None
    await third.stop()
    assert (kept.gateway_key, kept.tenant_gateway_url) == (SecretStr("chosen"), "http://gw.example")


async def test_local_sites_get_none(settings: Settings, endpoints: Endpoints) -> None:
    local = settings.model_copy(update={"sites_file": None})
    assert await start_for_up(local, endpoints) == (local, None)
    assert not (local.state_dir / KEY_FILE).exists()
