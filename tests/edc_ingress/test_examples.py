"""The example configuration in deploy/edc/ loads, and points connectors at routes the ingress has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.dataplane_registration import DEFAULT_TRANSFER_TYPES, Registration
from edc_ingress.app import Ingress, IngressLimits, create_app
from edc_ingress.settings import EdcSettings, connector_registry
from schemas.connectors import EdcConnector

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


PROPERTIES = [
    "edc-0.10-provider.properties",
    "edc-0.15-provider.properties",
    "edc-0.18-provider.properties",
    "edc-0.18-dps-provider.properties",
    "edc-main-provider.properties",
]


def properties_of(name: str) -> dict[str, str]:
    return dict(re.findall(r"^([\w.-]+)=(.*)$", (EXAMPLES / name).read_text(), flags=re.MULTILINE))


def provider_c(monkeypatch: pytest.MonkeyPatch) -> EdcConnector:
    for name in ("PROVIDER_A_KEY", "PROVIDER_A_MANAGEMENT_KEY", "PROVIDER_B_KEY", "PROVIDER_B_MANAGEMENT_KEY"):
        monkeypatch.setenv(f"GXWF_{name}", f"{name.lower()}-0123456789abcdef")
    for name in ("PROVIDER_C_KEY", "PROVIDER_C_MANAGEMENT_KEY", "PROVIDER_C_CLIENT_SECRET"):
        monkeypatch.setenv(f"GXWF_{name}", f"{name.lower()}-0123456789abcdef")
    settings = EdcSettings(_env_file=None, edc_connectors_file=EXAMPLES / "connectors.yaml")  # type: ignore[call-arg]
    return connector_registry(settings).get("provider-c")


@pytest.mark.parametrize("name", PROPERTIES)
def test_connector_properties_point_at_ingress_routes(name: str) -> None:
    properties = properties_of(name)
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


@pytest.mark.parametrize("name", ["edc-0.18-dps-provider.properties", "edc-main-provider.properties"])
def test_dps_connector_properties(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """EDC's own setting names (cited in the file) for the signaling API and the data plane selection."""
    properties = properties_of(name)
    assert properties["edc.dataplane.client.selector.strategy"] == "random"  # the one strategy EDC registers
    path = properties["web.http.signaling.path"]
    assert path == "/api/signaling" and properties["web.http.signaling.port"].isdigit()
    public = properties["web.http.signaling.public.uri"]
    assert urlsplit(public).path == path
    if name == "edc-main-provider.properties":
        # Main sends no callbackAddress: the ingress calls the configured signaling URL, this API's.
        assert provider_c(monkeypatch).signaling_url == public
    text = (EXAMPLES / name).read_text()
    for source in ("SignalingApiConfiguration.java", "selector.strategy"):
        assert source in text


def test_the_registration_example_is_what_register_dataplane_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    c = provider_c(monkeypatch)
    example = json.loads((EXAMPLES / "dataplane-registration.json").read_text())
    assert c.client_id is not None
    registration = Registration(
        dataplane_id=c.client_id,  # register-dataplane's default: the client id, the sub of our callback tokens
        endpoint="https://gxwf.example.org/dataflows",
        transfer_types=DEFAULT_TRANSFER_TYPES,
        labels=("gxwf",),
        connector=c,
    )
    body = registration.body()
    assert body["authorization"].pop("clientSecret") == "********"
    assert example["authorization"].pop("clientSecret").startswith("<")
    assert body == example
    # The control plane's tokens are got with this client: their sub is the one the ingress expects.
    assert c.token_subject == c.client_id == example["dataplaneId"]
    assert urlsplit(example["endpoint"]).path + "/start" in routes()
    # EDC picks this data plane for the asset: its transfer types and labels cover the asset's dataplaneMetadata.
    asset = json.loads((EXAMPLES / "asset-dps.json").read_text())
    assert set(asset["dataplaneMetadata"]["labels"]) <= set(example["labels"])
    assert set(asset["dataplaneMetadata"]["profiles"]) <= set(example["transferTypes"])
    assert asset["@id"] == "shell-count" and "dataAddress" not in asset
