"""Attack: a presigned upload URL used again after the upload was completed and checked, to swap the content a
run will read; and PUTs of other bytes than were announced.

Against the real WorkflowApi, SeaweedFS (requiring signatures) and the jobs handlers (the run really runs). The
announced sha256 is a header the URL's SigV4 signature covers (`x-amz-checksum-sha256`): a PUT without it fails
the signature (403), a PUT with it whose body hashes otherwise is refused (400 BadDigest). That is what S3 does
too; a checksum in the URL's query would be ignored by S3. A signed length is not enforced (a different length
is accepted), so the WorkflowApi also checks the size (and the sha256) of the bytes it copies into the input
when the upload is completed.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nats.js import JetStreamContext

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from tests.workflow_api.conftest import (
    COUNT_LINES,
    Api,
    api_service,
    endpoints,
    eventually,
    js,
    nc,
    settings,
    store,
)

__all__ = ["endpoints", "js", "nc", "settings", "store"]

pytestmark = pytest.mark.servers

VALIDATED = b"a\nb\nc\n"  # three lines
SWAPPED = b"abcde\n"  # as long, one line


@pytest.fixture
async def api(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[Api]:
    await MongoAssetCatalogue(store.db).apply(COUNT_LINES)
    handlers = HandlerService(settings, endpoints)
    await handlers.start()
    service = api_service(settings, endpoints)
    url = await service.start()
    yield Api(url, store, service, handlers, settings)
    await service.stop()
    await handlers.stop()


async def _presigned(http: httpx.AsyncClient, data: bytes, *, sha256: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "text", "size": len(data)}
    if sha256:
        body["sha256"] = hashlib.sha256(data).hexdigest()
    started = await http.post("/v1/inputs/uploads", json=body)
    assert started.status_code == 201, started.text
    answer: dict[str, Any] = started.json()
    return answer


async def _lines_a_run_counts(http: httpx.AsyncClient, input_id: str) -> str:
    started = await http.post("/v1/runs", json={"asset_id": "count-lines", "inputs": {"text": input_id}})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    async def counted() -> str | None:
        answer = await http.get(f"/v1/runs/{run_id}/results/files/count.txt")
        return answer.text.strip() if answer.status_code == 200 else None

    result: str = await eventually(counted, timeout=30)
    return result


@pytest.mark.parametrize("sha256", [True, False], ids=["sha256-announced", "size-only"])
async def test_a_put_after_completion_does_not_change_what_a_run_reads(api: Api, sha256: bool) -> None:
    _, token = await api.consumer()
    async with api.http(token) as http, httpx.AsyncClient(timeout=30) as s3:
        upload = await _presigned(http, VALIDATED, sha256=sha256)
        assert (await s3.put(upload["url"], content=VALIDATED, headers=upload["headers"])).status_code == 200
        completed = await http.post(upload["complete_url"])
        assert completed.status_code == 200 and completed.json()["state"] == "ready", completed.text
        # The same URL again, within its validity, with other bytes of the same length.
        again = await s3.put(upload["url"], content=SWAPPED, headers=upload["headers"])
        if sha256:
            assert again.status_code == 400  # the signed checksum does not match
        assert await _lines_a_run_counts(http, upload["input"]["id"]) == "3"


async def test_bytes_other_than_announced_are_refused(api: Api) -> None:
    consumer, token = await api.consumer()
    async with api.http(token) as http, httpx.AsyncClient(timeout=30) as s3:
        bound = await _presigned(http, VALIDATED, sha256=True)
        for other in (SWAPPED, VALIDATED + b"d\n"):
            # Refused by the object store itself: with the checksum header the body does not hash to it...
            refused = await s3.put(bound["url"], content=other, headers=bound["headers"])
            assert refused.status_code == 400 and "BadDigest" in refused.text, refused.text
            # ...and leaving the header out does not skip the check: the signature covers it.
            refused = await s3.put(bound["url"], content=other)
            assert refused.status_code == 403 and "SignatureDoesNotMatch" in refused.text, refused.text
        assert (await http.post(bound["complete_url"])).status_code == 409  # nothing arrived

        # Without a sha256 the object store takes any length: completion refuses it and keeps nothing.
        sized = await _presigned(http, VALIDATED, sha256=False)
        assert (await s3.put(sized["url"], content=VALIDATED + b"d\n")).status_code == 200
        refused = await http.post(sized["complete_url"])
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "size"
        assert (await http.get(f"/v1/inputs/{sized['input']['id']}")).status_code == 404
    assert await api.service.objects.list(f"inputs/{quote(consumer, safe='')}/") == []
