"""Bad input and abuse: every refusal is problem+json naming what to fix, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import zipfile
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from nats.js import JetStreamContext

from gxwf.runtime import Endpoints
from gxwf.settings import Settings
from schemas.inputs import InputDocument
from tests.backbone.conftest import stream_events
from tests.workflow_api.conftest import UPLOAD_LIMIT, Api, api_service

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def _fields(body: dict[str, object]) -> list[str]:
    errors = body.get("errors")
    assert isinstance(errors, list)
    return [str(e["field"]) for e in errors]


async def _nothing_kept(api: Api, consumer: str) -> None:
    assert await api.store.db[InputDocument.collection].count_documents({"consumer_id": consumer}) == 0
    objects = await api.service.objects.list(f"inputs/{quote(consumer, safe='')}/")
    assert objects == []


def _tar(entries: list[tarfile.TarInfo], data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in entries:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


async def test_missing_or_wrong_tokens_answer_401(api_only: Api) -> None:
    async with api_only.http() as anonymous, api_only.http("not-a-token") as wrong:
        for client in (anonymous, wrong):
            for method, path in (
                ("GET", "/v1/assets"),
                ("GET", "/v1/runs"),
                ("POST", "/v1/runs"),
                ("GET", "/v1/inputs"),
            ):
                body = _problem(await client.request(method, path, json={}), 401)
                assert _fields(body) == ["Authorization"]
        refused = await anonymous.get("/v1/runs")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        basic = await anonymous.get("/v1/runs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        _problem(basic, 401)


async def test_another_consumers_ids_answer_404_like_unknown_ones(api: Api) -> None:
    _, owner = await api.consumer()
    _, other = await api.consumer()
    async with api.http(owner) as mine, api.http(other) as theirs:
        uploaded = (await mine.post("/v1/inputs", params={"name": "text"}, content=b"a\n")).json()
        started = await mine.post("/v1/runs", json={"asset_id": "sleeper"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        for path in (
            f"/v1/inputs/{uploaded['id']}",
            f"/v1/runs/{run_id}",
            f"/v1/runs/{run_id}/logs",
            f"/v1/runs/{run_id}/results",
        ):
            stolen = _problem(await theirs.get(path), 404)
            unknown = _problem(
                await theirs.get(path.replace(uploaded["id"], "in-nope").replace(run_id, "run-nope")), 404
            )
            assert stolen["type"] == unknown["type"] == "urn:gxwf:problem:not-found"
        _problem(await theirs.delete(f"/v1/inputs/{uploaded['id']}"), 404)
        _problem(await theirs.post(f"/v1/runs/{run_id}/stop"), 404)
        # Using someone else's input in a run of one's own is refused as an unknown input.
        borrowed = _problem(
            await theirs.post("/v1/runs", json={"asset_id": "count-lines", "inputs": {"text": uploaded["id"]}}), 422
        )
        assert _fields(borrowed) == ["inputs.text"]
        assert (await mine.get(f"/v1/inputs/{uploaded['id']}")).status_code == 200
        await mine.post(f"/v1/runs/{run_id}/stop")


async def test_assets_offered_only_and_described(api_only: Api) -> None:
    _, token = await api_only.consumer(assets=("count-lines",))
    async with api_only.http(token) as http:
        listed = (await http.get("/v1/assets")).json()
        assert [a["id"] for a in listed["items"]] == ["count-lines"] and listed["next"] is None
        detail = (await http.get("/v1/assets/count-lines")).json()
        assert [i["name"] for i in detail["inputs"]] == ["text", "data"]
        assert detail["parameters"]["properties"]["COUNT"] == {
            "type": "integer",
            "default": 2,
            "minimum": 1.0,
            "maximum": 50.0,
        }
        assert detail["parameters"]["additionalProperties"] is False
        for asset in ("sleeper", "hidden", "no-such-asset"):
            _problem(await http.get(f"/v1/assets/{asset}"), 404)
            _problem(await http.post("/v1/runs", json={"asset_id": asset}), 404)
        _problem(await http.get("/v1/assets/count-lines", params={"version": 2}), 404)


async def test_assets_pages(api_only: Api) -> None:
    _, token = await api_only.consumer()
    async with api_only.http(token) as http:
        first = (await http.get("/v1/assets", params={"limit": 1})).json()
        second = (await http.get(first["next"])).json()
        assert [a["id"] for a in first["items"] + second["items"]] == ["count-lines", "sleeper"]
        assert second["next"] is None


async def test_parameters_and_inputs_outside_the_schema_publish_nothing(api_only: Api, js: JetStreamContext) -> None:
    _, token = await api_only.consumer()
    async with api_only.http(token) as http:
        text = (await http.post("/v1/inputs", params={"name": "text"}, content=b"a\n")).json()["id"]
        folder = (
            await http.post("/v1/inputs", params={"name": "data", "kind": "directory"}, content=_tar([_entry("a.txt")]))
        ).json()["id"]
        cases = [
            ({"COUNT": 51}, {"text": text}, "parameters.COUNT", "at most 50"),
            ({"COUNT": 0}, {"text": text}, "parameters.COUNT", "at least 1"),
            ({"COUNT": "three"}, {"text": text}, "parameters.COUNT", "must be an integer"),
            ({"COUNT": 2.5}, {"text": text}, "parameters.COUNT", "must be an integer"),
            ({"MODE": "turbo"}, {"text": text}, "parameters.MODE", "one of fast, slow"),
            ({"BOGUS": 1}, {"text": text}, "parameters.BOGUS", "not a parameter"),
            ({}, {}, "inputs.text", "required"),
            ({}, {"text": "in-doesnotexist"}, "inputs.text", "no input"),
            ({}, {"text": folder}, "inputs.text", "takes a file"),
            ({}, {"text": text, "extra": text}, "inputs.extra", "not an input"),
        ]
        for parameters, inputs, field, message in cases:
            body = _problem(
                await http.post(
                    "/v1/runs", json={"asset_id": "count-lines", "parameters": parameters, "inputs": inputs}
                ),
                422,
            )
            errors = body["errors"]
            assert isinstance(errors, list) and errors[0]["field"] == field and message in errors[0]["message"], body
        malformed = await http.post("/v1/runs", content=b"{not json", headers={"Content-Type": "application/json"})
        _problem(malformed, 422)
        wrong_shape = _problem(await http.post("/v1/runs", json={"asset_id": "count-lines", "surprise": 1}), 422)
        assert "surprise" in _fields(wrong_shape)[0]
    assert await stream_events(js, "wf.run.requested") == []


async def test_an_upload_over_the_limit_is_413_and_keeps_nothing(api_only: Api) -> None:
    consumer, token = await api_only.consumer()

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(UPLOAD_LIMIT // 65536 + 2):
            yield b"y" * 65536

    async with api_only.http(token) as http:
        declared = await http.post("/v1/inputs", params={"name": "big"}, content=b"y" * (UPLOAD_LIMIT + 1))
        assert _fields(_problem(declared, 413)) == ["body"]
        streamed = await http.post("/v1/inputs", params={"name": "big"}, content=chunked())
        _problem(streamed, 413)
        for kind in ("directory",):
            archive = await http.post("/v1/inputs", params={"name": "big", "kind": kind}, content=chunked())
            _problem(archive, 413)
        presign = await http.post("/v1/inputs/uploads", json={"name": "big", "size": UPLOAD_LIMIT + 1})
        _problem(presign, 413)
    await _nothing_kept(api_only, consumer)


async def test_a_checksum_mismatch_is_422_and_keeps_nothing(api_only: Api) -> None:
    consumer, token = await api_only.consumer()
    wrong = hashlib.sha256(b"something else").hexdigest()
    async with api_only.http(token) as http:
        raw = await http.post(
            "/v1/inputs", params={"name": "t"}, content=b"data\n", headers={"X-Checksum-Sha256": wrong}
        )
        assert _fields(_problem(raw, 422)) == ["X-Checksum-Sha256"]
        archive = await http.post(
            "/v1/inputs", params={"name": "d", "kind": "directory", "sha256": wrong}, content=_tar([_entry("a.txt")])
        )
        _problem(archive, 422)
        multipart = await http.post(
            "/v1/inputs", params={"name": "m"}, files={"file": ("m.txt", b"data\n")}, data={"sha256": wrong}
        )
        assert _fields(_problem(multipart, 422)) == ["form.sha256"]
        bad_format = await http.post(
            "/v1/inputs", params={"name": "t"}, content=b"x", headers={"X-Checksum-Sha256": "abc"}
        )
        _problem(bad_format, 422)
        right = hashlib.sha256(b"data\n").hexdigest()
        kept = await http.post(
            "/v1/inputs", params={"name": "t"}, content=b"data\n", headers={"X-Checksum-Sha256": right}
        )
        assert kept.status_code == 201 and kept.json()["sha256"] == right
        await http.delete(f"/v1/inputs/{kept.json()['id']}")
    await _nothing_kept(api_only, consumer)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([_entry("../escape.txt")], "outside the input"),
        ([_entry("ok/../../escape.txt")], "outside the input"),
        ([_entry("/etc/passwd")], "outside the input"),
        ([_entry("link", tarfile.SYMTYPE, "/etc/passwd")], "links are not allowed"),
        ([_entry("a.txt"), _entry("hard", tarfile.LNKTYPE, "a.txt")], "links are not allowed"),
        ([_entry("dev", tarfile.CHRTYPE)], "device"),
        ([_entry("a.txt"), _entry("./a.txt")], "appears twice"),
    ],
)
async def test_archives_with_escapes_links_or_devices_are_refused(
    api_only: Api, entries: list[tarfile.TarInfo], message: str
) -> None:
    consumer, token = await api_only.consumer()
    async with api_only.http(token) as http:
        refused = await http.post("/v1/inputs", params={"name": "d", "kind": "directory"}, content=_tar(entries))
        body = _problem(refused, 422)
        assert message in str(body["detail"])
    await _nothing_kept(api_only, consumer)


async def test_zip_escapes_links_and_too_many_files_are_refused(api_only: Api) -> None:
    consumer, token = await api_only.consumer()

    def zipped(names: list[str], symlink: str | None = None) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name in names:
                archive.writestr(name, b"z")
            if symlink:
                info = zipfile.ZipInfo(symlink)
                info.external_attr = 0o120777 << 16
                archive.writestr(info, "/etc/passwd")
        return buffer.getvalue()

    async with api_only.http(token) as http:
        escape = await http.post("/v1/inputs", params={"name": "z", "kind": "directory"}, content=zipped(["../x"]))
        assert "outside the input" in str(_problem(escape, 422)["detail"])
        link = await http.post("/v1/inputs", params={"name": "z", "kind": "directory"}, content=zipped(["a"], "l"))
        assert "symbolic link" in str(_problem(link, 422)["detail"])
        many = await http.post(
            "/v1/inputs", params={"name": "z", "kind": "directory"}, content=zipped([f"f{i}" for i in range(21)])
        )
        _problem(many, 413)
        junk = await http.post("/v1/inputs", params={"name": "z", "kind": "directory"}, content=b"not an archive")
        assert "tar" in str(_problem(junk, 422)["detail"])
        fine = await http.post(
            "/v1/inputs", params={"name": "z", "kind": "directory"}, content=zipped(["a/b.txt", "c"])
        )
        assert fine.status_code == 201 and fine.json()["file_count"] == 2
        detail = (await http.get(f"/v1/inputs/{fine.json()['id']}")).json()
        assert sorted(f["path"] for f in detail["files"]) == ["a/b.txt", "c"]
        await http.delete(f"/v1/inputs/{fine.json()['id']}")
    await _nothing_kept(api_only, consumer)


async def test_multipart_uploads_and_their_paths(api_only: Api) -> None:
    consumer, token = await api_only.consumer()
    async with api_only.http(token) as http:
        files = [("file", ("a.txt", b"A")), ("file", ("sub/b.txt", b"BB"))]
        tree = await http.post("/v1/inputs", params={"name": "tree", "kind": "directory"}, files=files)
        assert tree.status_code == 201, tree.text
        assert (tree.json()["file_count"], tree.json()["size"]) == (2, 3)
        escape = await http.post(
            "/v1/inputs", params={"name": "tree", "kind": "directory"}, files=[("file", ("../../x", b"x"))]
        )
        _problem(escape, 422)
        dots = await http.post("/v1/inputs", params={"name": "one", "filename": ".."}, content=b"x")
        assert _fields(_problem(dots, 422)) == ["filename"]
        two = await http.post("/v1/inputs", params={"name": "one"}, files=files)
        assert _fields(_problem(two, 422)) == ["kind"]
        listed = (await http.get("/v1/inputs")).json()["items"]
        assert [i["name"] for i in listed] == ["tree"]
        assert (await http.delete(f"/v1/inputs/{tree.json()['id']}")).status_code == 204
    await _nothing_kept(api_only, consumer)


async def test_presigned_upload_checks_size_and_sha256_at_completion(api_only: Api) -> None:
    consumer, token = await api_only.consumer()
    data = b"big data\n" * 100
    async with api_only.http(token) as http, httpx.AsyncClient(timeout=30) as s3:
        started = await http.post(
            "/v1/inputs/uploads",
            json={"name": "big", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        )
        assert started.status_code == 201, started.text
        early = await http.post(started.json()["complete_url"])
        _problem(early, 409)
        # The headers it answered are part of the signature (the announced sha256 among them).
        put = await s3.put(started.json()["url"], content=data, headers=started.json()["headers"])
        assert put.status_code == 200, put.text
        done = await http.post(started.json()["complete_url"])
        assert done.status_code == 200 and done.json()["state"] == "ready" and done.json()["size"] == len(data)
        await http.delete(f"/v1/inputs/{done.json()['id']}")

        short = await http.post("/v1/inputs/uploads", json={"name": "big", "size": len(data)})
        await s3.put(short.json()["url"], content=data[:-1])
        assert _fields(_problem(await http.post(short.json()["complete_url"]), 422)) == ["size"]
        _problem(await http.get(f"/v1/inputs/{short.json()['input']['id']}"), 404)
    await _nothing_kept(api_only, consumer)


async def test_a_deprovisioned_consumer_may_only_read(api_only: Api) -> None:
    _, token = await api_only.consumer(deprovisioned="transfer terminated by the provider")
    async with api_only.http(token) as http:
        for method, path, kwargs in (
            ("POST", "/v1/runs", {"json": {"asset_id": "count-lines"}}),
            ("POST", "/v1/inputs?name=t", {"content": b"x"}),
            ("GET", "/v1/assets", {}),
            ("GET", "/v1/inputs", {}),
        ):
            body = _problem(await http.request(method, path, **kwargs), 403)
            assert "transfer terminated by the provider" in str(body["detail"])
            assert body["type"] == "urn:gxwf:problem:deprovisioned"
        assert (await http.get("/v1/runs")).status_code == 200


async def test_a_revocation_takes_effect_within_the_auth_cache_time(api_only: Api) -> None:
    consumer, token = await api_only.consumer()
    async with api_only.http(token) as http:
        assert (await http.get("/v1/inputs")).status_code == 200
        await api_only.store.db["access_grants"].update_many({"consumer_id": consumer}, {"$set": {"state": "revoked"}})
        await api_only.store.db["provisions"].update_many(
            {"consumer_id": consumer}, {"$set": {"state": "deprovisioned", "deprovision_reason": "contract ended"}}
        )
        await asyncio.sleep(api_only.service.settings.workflow_api_auth_cache_seconds + 0.1)
        body = _problem(await http.post("/v1/inputs", params={"name": "t"}, content=b"x"), 403)
        assert "contract ended" in str(body["detail"])


async def test_a_per_consumer_deployment_refuses_other_consumers_tokens(
    api_only: Api, settings: Settings, endpoints: Endpoints
) -> None:
    mine, token = await api_only.consumer()
    _, other = await api_only.consumer()
    scoped = api_service(settings, endpoints, consumer_id=mine)
    url = await scoped.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            allowed = await http.get("/v1/runs", headers={"Authorization": f"Bearer {token}"})
            assert allowed.status_code == 200
            _problem(await http.get("/v1/runs", headers={"Authorization": f"Bearer {other}"}), 401)
    finally:
        await scoped.stop()
