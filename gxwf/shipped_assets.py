"""The WorkflowAssets shipped in deploy/assets: `gxwf up` applies them to an empty catalogue, so a first trial
(`gxwf edc simulate`) finds something to sell, and says in its summary what it applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gxwf.definitions import load_assets
from gxwf.errors import UserError
from ports.assets import AssetCatalogue
from schemas.assets import WorkflowAssetDefinition

# Next to the packages in a checkout or an editable install; a wheel does not carry it.
SHIPPED = Path(__file__).parents[1] / "deploy" / "assets"


@dataclass(frozen=True)
class Applied:
    """What `gxwf up` did to the catalogue, in one line for its summary table."""

    line: str
    assets: tuple[tuple[str, int], ...] = ()

    def summary(self) -> str:
        return self.line


async def apply_shipped_if_empty(catalogue: AssetCatalogue, source: Path = SHIPPED) -> Applied:
    """Apply every definition in `source` when the catalogue has never held an asset (deleted ones count:
    the operator curated it). Applying an unchanged definition again would be a no-op anyway."""
    stored = await catalogue.list_latest(include_deleted=True)
    if stored:
        return Applied(f"{len(stored)} in the catalogue (gxwf assets list)")
    definitions = _definitions(source)
    if isinstance(definitions, str):
        return Applied(f"none: the catalogue is empty; {definitions}")
    applied = []
    for definition in definitions:
        asset, _ = await catalogue.apply(definition)
        applied.append((asset.asset_id, asset.version))
    names = ", ".join(f"{asset_id} v{version}" for asset_id, version in applied)
    return Applied(f"applied {source} (the catalogue was empty): {names}", tuple(applied))


def _definitions(source: Path) -> list[WorkflowAssetDefinition] | str:
    """The shipped definitions, or why there are none to apply."""
    if not source.is_dir():
        return "add some with `gxwf assets apply DIR`"
    try:
        return load_assets(source)
    except UserError as error:
        return str(error)
