"""`gxwf assets apply|list|show|delete`: the WorkflowAsset catalogue, from YAML definitions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from gxwf.definitions import load_assets
from gxwf.endpoints import ServersUnknown, known_servers
from gxwf.errors import UserError
from gxwf.settings import load_settings

if TYPE_CHECKING:
    from adapters.mongo_assets import MongoAssetCatalogue

assets_app = typer.Typer(
    help="WorkflowAssets offered through the connector (definitions in YAML).", no_args_is_help=True
)
T = TypeVar("T")
AssetArg = Annotated[str, typer.Argument(help="The asset's id, as in its definition.")]
StateDir = Annotated[Path | None, typer.Option("--state-dir", help="Where endpoints.json is (default .gxwf).")]


def _mongo(state_dir: Path | None) -> tuple[str, str]:
    settings = load_settings(state_dir)
    try:
        found = known_servers(settings, ("mongo",))
    except ServersUnknown as error:
        raise UserError(str(error)) from None
    return found["mongo"], settings.mongo_database


def _with_catalogue(state_dir: Path | None, work: Callable[[MongoAssetCatalogue], Awaitable[T]]) -> T:
    from adapters.mongo_assets import MongoAssetCatalogue
    from adapters.mongo_store import MongoStateStore

    url, database = _mongo(state_dir)

    async def main() -> T:
        store = MongoStateStore.connect(url, database)
        try:
            catalogue = MongoAssetCatalogue(store.db)
            await catalogue.ensure_indexes()
            return await work(catalogue)
        finally:
            await store.close()

    return asyncio.run(main())


@assets_app.command("apply")
def apply(
    target: Annotated[Path, typer.Argument(help="A definition file, or a directory of *.yaml definitions.")],
    state_dir: StateDir = None,
) -> None:
    """Store each definition; a changed one becomes a new version, an unchanged one stays as it is."""
    definitions = load_assets(target)

    async def work(catalogue: MongoAssetCatalogue) -> list[tuple[str, int, bool]]:
        applied = []
        for definition in definitions:
            stored, created = await catalogue.apply(definition)
            applied.append((stored.asset_id, stored.version, created))
        return applied

    table = Table(title="applied")
    for column in ("asset", "version", "change"):
        table.add_column(column)
    for asset_id, version, created in _with_catalogue(state_dir, work):
        table.add_row(asset_id, str(version), "new version" if created else "unchanged")
    Console().print(table)


@assets_app.command("list")
def list_assets(
    deleted: Annotated[bool, typer.Option("--deleted", help="Also list deleted assets.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    state_dir: StateDir = None,
) -> None:
    """The latest version of each asset."""
    found = _with_catalogue(state_dir, lambda c: c.list_latest(include_deleted=deleted))
    if as_json:
        for asset in found:
            print(json.dumps(asset.summary()))
        return
    table = Table(title="WorkflowAssets")
    for column in ("id", "version", "title", "EDC asset ids", "cpu", "memory", "gpu", "deleted"):
        table.add_column(column)
    for asset in found:
        row: dict[str, Any] = asset.summary()
        row["edc_asset_ids"] = ", ".join(row["edc_asset_ids"])
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


@assets_app.command("show")
def show(
    asset_id: AssetArg,
    version: Annotated[int | None, typer.Option("--version", min=1, help="A past version (default: latest).")] = None,
    state_dir: StateDir = None,
) -> None:
    """One version's definition, as YAML."""
    found = _with_catalogue(
        state_dir, lambda c: c.version(asset_id, version) if version is not None else c.latest(asset_id)
    )
    if found is None:
        which = f" version {version}" if version is not None else ""
        raise UserError(f"no asset {asset_id!r}{which}: see `gxwf assets list`")
    header = {"version": found.version, "created_at": found.created_at.isoformat(), "deleted": found.deleted}
    print(
        yaml.safe_dump({**header, **found.definition.model_dump(mode="json", exclude_defaults=True)}, sort_keys=False)
    )


@assets_app.command("delete")
def delete(asset_id: AssetArg, state_dir: StateDir = None) -> None:
    """Offer the asset to no new transfer; deployments and runs that use a version keep it."""
    if not _with_catalogue(state_dir, lambda c: c.delete(asset_id)):
        raise UserError(f"no asset {asset_id!r} to delete (unknown or deleted already)")
    print(f"deleted {asset_id}")
