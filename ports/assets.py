"""The WorkflowAsset catalogue: versions of each definition, looked up by our id or an EDC asset id."""

from __future__ import annotations

from typing import Protocol

from schemas.assets import StoredAsset, WorkflowAssetDefinition


class AssetCatalogue(Protocol):
    async def apply(self, definition: WorkflowAssetDefinition) -> tuple[StoredAsset, bool]:
        """Store the definition; a new version only when its content changed. Returns it and whether it is new."""
        ...

    async def latest(self, asset_id: str) -> StoredAsset | None: ...

    async def version(self, asset_id: str, version: int) -> StoredAsset | None: ...

    async def for_edc_asset(self, edc_asset_id: str) -> StoredAsset | None:
        """The latest version of the (not deleted) asset that the connector's asset id maps to."""
        ...

    async def list_latest(self, *, include_deleted: bool = False) -> list[StoredAsset]: ...

    async def delete(self, asset_id: str) -> bool:
        """Offer it to no new transfer; the versions stay for deployments and runs that use them."""
        ...
