"""The example configuration in deploy/edc/ loads, and points connectors at routes the ingress has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from edc_ingress.app import Ingress, IngressLimits, create_app
from edc_ingress.settings import EdcSettings, connector_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "edc"


async def _never() -> dict[str, str]:
    return {}


def routes() -> set[str]:
    registry = connector_registry(EdcSettings(_env_file=None, edc_api_key="0123456789abcdef0123"))  # type: ignore[call-arg]
    app = create_app(Ingress(registry, None, None, _never, IngressLimits()))  # type: ignore[arg-type]
    return {getattr(route, "path", "") for route in app.routes}


def test_the_connectors_file_loads_with_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROVIDER_A_KEY", "PROVIDER_A_MANAGEMENT_KEY", "PROVIDER_B_KEY", "PROVIDER_B_MANAGEMENT_KEY"):
        monkeypatch.setenv(f"GXWF_{name}", f"{name.lower()}-0123456789abcdef")
    for name in ("PROVIDER_C_KEY", "PROVIDER_C_MANAGEMENT_KEY", "PROVIDER_C_CLIENT_SECRET"):
        monkeypatch.setenv(f"GXWF_{name}", f"{name.lower()}-0123456789abcdef")
    settings = EdcSettings(_env_file=None, edc_connectors_file=EXAMPLES / "connectors.yaml")  # type: ignore[call-arg]
    registry = connector_registry(settings)
    assert registry.names == ["provider-a", "provider-b", "provider-c"]
    assert registry.get("provider-c").signaling_url == "https://provider-c.example.org/api/signaling"
    b = registry.get("provider-b")
    assert b.api_key_header == "X-Provider-B-Key" and b.management_api_version == "v4"
    assert b.api_key.get_secret_value() == "provider_b_key-0123456789abcdef"
    c = registry.get("provider-c")
    credentials = c.client_credentials()
    assert c.jwks_url and c.token_issuer and c.token_audience == "gxwf-data-plane" and credentials is not None
    assert credentials.client_secret.get_secret_value() == "provider_c_client_secret-0123456789abcdef"


def test_the_env_example_is_every_setting_spelled_right() -> None:
    settings = EdcSettings(_env_file=EXAMPLES / "gxwf-edc.env")  # type: ignore[call-arg]
    assert settings.edc_management_url == "http://provider-controlplane:8181/api/management"
    names = {line.split("=", 1)[0].lstrip("# ") for line in (EXAMPLES / "gxwf-edc.env").read_text().splitlines()}
    fields = {f"GXWF_{name.upper()}" for name in EdcSettings.model_fields}
    assert {n for n in names if n.startswith("GXWF_")} <= fields


@pytest.mark.parametrize(
    "name", ["edc-0.10-provider.properties", "edc-0.15-provider.properties", "edc-0.18-provider.properties"]
)
def test_connector_properties_point_at_ingress_routes(name: str) -> None:
    text = (EXAMPLES / name).read_text()
    properties = dict(re.findall(r"^([\w.-]+)=(.*)$", text, flags=re.MULTILINE))
    paths = routes()
    assert urlsplit(properties["edc.callback.gxwf.uri"]).path in paths
    assert properties["edc.callback.gxwf.auth-key"] == "x-api-key"
    assert set(properties["edc.callback.gxwf.events"].split(",")) == {"contract.negotiation", "transfer.process"}
    endpoint = properties.get("provisioner.http.entries.gxwf.endpoint")
    if endpoint is not None:
        assert urlsplit(endpoint).path == "/edc/provisioner"
        assert "x-api-key" in parse_qs(urlsplit(endpoint).query)
        assert properties["provisioner.http.entries.gxwf.data.address.type"] == "WorkflowApi"


def test_asset_examples() -> None:
    control = json.loads((EXAMPLES / "asset-control-plane.json").read_text())
    assert control["dataAddress"]["type"] == "WorkflowApi"
    data_plane = json.loads((EXAMPLES / "asset-provision-http.json").read_text())
    address = data_plane["dataAddress"]
    assert address["type"] == "ProvisionHttp"
    assert urlsplit(address["baseUrl"]).path == "/edc/dataplane/provision" in routes()
