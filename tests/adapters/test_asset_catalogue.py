"""Which WorkflowAsset serves an EDC asset id when more than one answers to it."""

from __future__ import annotations

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from schemas.assets import WorkflowAssetDefinition


def asset(asset_id: str, *edc_ids: str) -> WorkflowAssetDefinition:
    return WorkflowAssetDefinition(id=asset_id, title=asset_id, command=["/bin/true"], edc_asset_ids=list(edc_ids))


async def test_the_asset_named_like_the_edc_asset_comes_before_stand_ins(store: MongoStateStore) -> None:
    catalogue = MongoAssetCatalogue(store.db)
    await catalogue.ensure_indexes()
    # The stand-in sorts first by id; the asset whose own id is the EDC asset id still wins.
    await catalogue.apply(asset("a-stand-in", "zeta"))
    found = await catalogue.for_edc_asset("zeta")
    assert found is not None and found.asset_id == "a-stand-in"
    await catalogue.apply(asset("zeta", "urn:zeta"))
    found = await catalogue.for_edc_asset("zeta")
    assert found is not None and found.asset_id == "zeta"
    await catalogue.delete("zeta")
    found = await catalogue.for_edc_asset("zeta")
    assert found is not None and found.asset_id == "a-stand-in"
