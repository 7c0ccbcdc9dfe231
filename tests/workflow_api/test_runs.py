"""Runs through the WorkflowApi on the real jobs and results handlers: start, follow, results, stop, list."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from gxwf_client import ApiError, WorkflowClient
from gxwf_client.client import end_state

from gxwf.runtime import Endpoints
from gxwf.settings import Settings
from handlers.context import HandlerContext
from handlers.results.retention import expire_once
from schemas.provisioning import AccessGrantDocument
from schemas.run import RunDocument
from tests.workflow_api.conftest import Api, api_service, eventually, run_finished


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def test_a_run_with_inputs_and_parameters_end_to_end(api: Api, tmp_path: Path) -> None:
    _, token = await api.consumer()
    text = tmp_path / "text.txt"
    text.write_text("a\nb\nc\n")
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "one.csv").write_text("1\n")
    (data / "sub" / "two.csv").write_text("2\n")
    async with api.client(token) as client:
        uploaded = await client.upload_file(text, "text")
        folder = await client.upload_directory(data, "data")
        assert (uploaded.state, uploaded.size) == ("ready", 6)
        assert uploaded.sha256 == hashlib.sha256(b"a\nb\nc\n").hexdigest()
        assert folder.kind == "directory" and folder.file_count == 2

        accepted = await client.start_run(
            "count-lines", parameters={"COUNT": 3, "MODE": "slow"}, inputs={"text": uploaded.id, "data": folder.id}
        )
        assert accepted.state in ("requested", "queued")
        # Followed from the start: through requested/queued/pending into running, to the end event.
        events = [event async for event in client.follow_logs(accepted.run_id)]
        text_seen = "\n".join(e.data for e in events if e.kind == "log")
        assert "line 0 slow\nline 1 slow\nline 2 slow" in text_seen and "done" in text_seen
        assert events[-1].kind == "end" and end_state(events[-1])["state"] == "succeeded"

        status = await run_finished(api, client, accepted.run_id)
        states = [entry.state for entry in status.timeline]  # type: ignore[attr-defined]
        assert states[:1] == ["queued"] and states[-2:] == ["running", "succeeded"]
        # The run belongs to the transfer whose token started it: that transfer's timeline shows it.
        run_doc = await api.store.get(RunDocument, accepted.run_id)
        assert run_doc is not None and run_doc.transfer_process_id is not None
        grant = await api.store.get(AccessGrantDocument, run_doc.transfer_process_id)
        assert grant is not None and grant.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        assert status.inputs == {"text": uploaded.id, "data": folder.id}  # type: ignore[attr-defined]

        results = await client.results(accepted.run_id)
        by_name = {f.name: f for f in results.files}
        assert set(by_name) == {"count.txt", "listing.txt"}
        count = await client.download(accepted.run_id, "count.txt", tmp_path / "out" / "count.txt")
        assert count.read_text().strip() == "3"
        listing = await client.download(accepted.run_id, "listing.txt", tmp_path / "out" / "listing.txt")
        assert listing.read_text().split() == ["./one.csv", "./sub/two.csv"]

        archive = await client.download_archive(accepted.run_id, tmp_path / "all.zip")
        with zipfile.ZipFile(archive) as zipped:
            assert sorted(zipped.namelist()) == ["log.txt", "outputs/count.txt", "outputs/listing.txt"]
            assert zipped.read("outputs/count.txt").strip() == b"3"
            assert b"line 2 slow" in zipped.read("log.txt")

    async with api.http(token) as http:
        tarred = await http.get(f"/v1/runs/{accepted.run_id}/results/archive", params={"format": "tar"})
        with tarfile.open(fileobj=io.BytesIO(tarred.content)) as tar:
            assert sorted(tar.getnames()) == ["log.txt", "outputs/count.txt", "outputs/listing.txt"]
        # The local run directory gone (as a pod would be): the log comes from the archive in S3.
        shutil.rmtree(api.settings.state_dir / "runs" / accepted.run_id)
        archived = await http.get(f"/v1/runs/{accepted.run_id}/logs")
        assert archived.status_code == 200 and "line 2 slow" in archived.text
        tail = await http.get(f"/v1/runs/{accepted.run_id}/logs", params={"offset": len(archived.content) - 5})
        assert tail.text == archived.text[-5:]


async def test_range_requests_and_presigned_downloads(api: Api, tmp_path: Path) -> None:
    _, token = await api.consumer()
    text = tmp_path / "t.txt"
    text.write_text("x\n" * 7)
    async with api.client(token) as client:
        uploaded = await client.upload_file(text, "text")
        accepted = await client.start_run("count-lines", parameters={"COUNT": 1}, inputs={"text": uploaded.id})
        await run_finished(api, client, accepted.run_id)
    async with api.http(token) as http:
        path = f"/v1/runs/{accepted.run_id}/results/files/count.txt"
        whole = await http.get(path)
        assert whole.status_code == 200 and whole.content.strip() == b"7"
        assert whole.headers["x-checksum-sha256"] == hashlib.sha256(whole.content).hexdigest()
        first = await http.get(path, headers={"Range": "bytes=0-0"})
        assert first.status_code == 206 and first.content == b"7"
        assert first.headers["content-range"] == f"bytes 0-0/{len(whole.content)}"
        suffix = await http.get(path, headers={"Range": "bytes=-1"})
        assert suffix.status_code == 206 and suffix.content == b"\n"
        beyond = await http.get(path, headers={"Range": "bytes=99-"})
        assert beyond.status_code == 416 and beyond.headers["content-type"] == "application/problem+json"
        missing = await http.get(f"/v1/runs/{accepted.run_id}/results/files/nope.txt")
        assert missing.status_code == 404
        presigned = await http.get(f"/v1/runs/{accepted.run_id}/results/urls/count.txt")
        assert presigned.status_code == 200
        direct = await http.get(presigned.json()["url"], headers={"Authorization": ""})
        assert direct.status_code == 200 and direct.content == whole.content
        lease = await api.store.db["leases"].find_one({"_id": f"result-download:{accepted.run_id}"})
        assert lease is not None and lease["holder"] == api.service.holder


async def test_idempotent_start_and_a_reused_key(api: Api, tmp_path: Path) -> None:
    _, token = await api.consumer()
    text = tmp_path / "t.txt"
    text.write_text("x\n")
    async with api.client(token) as client:
        uploaded = await client.upload_file(text, "text")
        first = await client.start_run("count-lines", inputs={"text": uploaded.id}, idempotency_key="k-1")
        again = await client.start_run("count-lines", inputs={"text": uploaded.id}, idempotency_key="k-1")
        assert again.run_id == first.run_id
        with pytest.raises(ApiError) as reused:
            await client.start_run(
                "count-lines", parameters={"COUNT": 4}, inputs={"text": uploaded.id}, idempotency_key="k-1"
            )
        assert reused.value.status == 409 and reused.value.errors[0]["field"] == "Idempotency-Key"
        await run_finished(api, client, first.run_id)
        runs = await client.runs()
        assert [r.id for r in runs].count(first.run_id) == 1
        status = await client.run(first.run_id)
        assert [e.state for e in status.timeline].count("running") == 1


async def test_stop_a_running_run_and_then_a_finished_one(api: Api) -> None:
    _, token = await api.consumer()
    async with api.client(token) as client:
        accepted = await client.start_run("sleeper")

        async def running() -> bool:
            return (await client.run(accepted.run_id)).state == "running"

        await eventually(running, timeout=20)
        stopping = await client.stop_run(accepted.run_id)
        assert stopping.message == "stop requested"
        events = [event async for event in client.follow_logs(accepted.run_id)]
        assert end_state(events[-1])["state"] == "stopped"
        assert "sleeping" in "\n".join(e.data for e in events if e.kind == "log")
        with pytest.raises(ApiError) as finished:
            await client.stop_run(accepted.run_id)
        assert finished.value.status == 409 and "already ended: stopped" in finished.value.detail


async def test_list_runs_filters_and_pages(api: Api, tmp_path: Path) -> None:
    _, token = await api.consumer()
    text = tmp_path / "t.txt"
    text.write_text("x\n")
    async with api.client(token) as client:
        uploaded = await client.upload_file(text, "text")
        ids = []
        for _ in range(3):
            ids.append(
                (await client.start_run("count-lines", parameters={"COUNT": 1}, inputs={"text": uploaded.id})).run_id
            )
        for run_id in ids:
            await run_finished(api, client, run_id)
        sleeper = await client.start_run("sleeper")
    async with api.http(token) as http:
        pages: list[str] = []
        url: str | None = "/v1/runs?limit=2&asset=count-lines"
        while url is not None:
            page = (await http.get(url)).json()
            pages += [item["id"] for item in page["items"]]
            url = page["next"]
        assert sorted(pages) == sorted(ids)
        succeeded = (await http.get("/v1/runs", params={"state": "succeeded"})).json()["items"]
        assert {r["id"] for r in succeeded} == set(ids)
        future = (await http.get("/v1/runs", params={"since": "2999-01-01T00:00:00Z"})).json()["items"]
        assert future == []
        bad = await http.get("/v1/runs", params={"state": "exploded"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "state"
        cursor = await http.get("/v1/runs", params={"cursor": "not-a-cursor"})
        assert cursor.status_code == 422 and cursor.json()["errors"][0]["field"] == "cursor"
        await http.post(f"/v1/runs/{sleeper.run_id}/stop")


async def test_a_workflow_api_away_from_the_runs_follows_the_log_stream(
    api: Api, settings: Settings, endpoints: Endpoints, tmp_path: Path
) -> None:
    """As on a Kubernetes site: no run directory beside this WorkflowApi, the log comes from WF_LOGS."""
    remote = api_service(settings, endpoints, tmp_path / "elsewhere")
    url = await remote.start()
    try:
        _, token = await api.consumer()
        text = tmp_path / "t.txt"
        text.write_text("x\n")
        async with WorkflowClient(url, token, timeout=30) as client:
            uploaded = await client.upload_file(text, "text")
            accepted = await client.start_run("count-lines", parameters={"COUNT": 20}, inputs={"text": uploaded.id})

            async def partial_log() -> str | None:
                text = await client.logs(accepted.run_id)
                # Read before a status that still says running: the text is what the stream held while it ran.
                return text if text and (await client.run(accepted.run_id)).state == "running" else None

            assert (await eventually(partial_log, timeout=20)).startswith("line 0 fast\n")
            events = [event async for event in client.follow_logs(accepted.run_id)]
            logged = [e for e in events if e.kind == "log"]
            expected = "\n".join(f"line {i} fast" for i in range(20))
            assert "\n".join(e.data for e in logged).startswith(expected)
            assert end_state(events[-1])["state"] == "succeeded"
            # Resumed after the first event: exactly the rest, nothing twice.
            first = logged[0]
            assert first.offset is not None
            rest = [e async for e in client.follow_logs(accepted.run_id, offset=first.offset)]
            assert "\n".join(e.data for e in rest if e.kind == "log") == "\n".join(e.data for e in logged[1:])
            await run_finished(api, client, accepted.run_id)
            archived = await client.logs(accepted.run_id)
            assert archived.startswith("line 0 fast\n") and archived.rstrip().endswith("done")
    finally:
        await remote.stop()


async def test_results_past_their_retention_are_gone_and_say_so(api: Api, tmp_path: Path) -> None:
    _, token = await api.consumer()
    text = tmp_path / "t.txt"
    text.write_text("x\n")
    async with api.client(token) as client:
        uploaded = await client.upload_file(text, "text")
        accepted = await client.start_run("count-lines", parameters={"COUNT": 1}, inputs={"text": uploaded.id})
        await run_finished(api, client, accepted.run_id)
    assert api.handlers is not None and api.handlers.bus is not None
    ctx = HandlerContext(store=api.store, events=api.handlers.bus, objects=api.handlers.objects)
    # A retention shorter than the run's age: its results go now.
    assert await expire_once(ctx, retention_days=1e-9) >= 1
    async with api.http(token) as http:
        for path in ("results", "results/files/count.txt", "results/archive", "logs"):
            gone = await http.get(f"/v1/runs/{accepted.run_id}/{path}")
            assert gone.status_code == 410, (path, gone.text)
            assert gone.headers["content-type"] == "application/problem+json"
            assert "retention" in gone.json()["detail"]
        # The run itself is still described, with no results link.
        status = await http.get(f"/v1/runs/{accepted.run_id}")
        assert status.status_code == 200 and status.json()["state"] == "succeeded"


async def test_results_whose_publishing_failed_say_why_and_are_not_retried(api: Api) -> None:
    _, token = await api.consumer()
    async with api.client(token) as client:
        accepted = await client.start_run("sleeper")
        await eventually(lambda: _state_is(client, accepted.run_id, "running"), timeout=20)
        await client.stop_run(accepted.run_id)
        await run_finished(api, client, accepted.run_id)
    # What the results handler leaves when publishing failed on its last try.
    reason = "OSError: s3://gxwf/results/x: stored 1 bytes of 2"
    await api.store.db["results"].update_one({"_id": accepted.run_id}, {"$set": {"state": "failed", "reason": reason}})
    async with api.http(token) as http:
        for path in ("results", "results/archive"):
            failed = await http.get(f"/v1/runs/{accepted.run_id}/{path}")
            assert failed.status_code == 409, (path, failed.text)
            assert failed.json()["type"].endswith("results-failed") and reason in failed.json()["detail"]
            assert "retry-after" not in failed.headers
        status = await http.get(f"/v1/runs/{accepted.run_id}")
        assert status.json()["state"] == "stopped" and status.json()["results_url"] is None


async def _state_is(client: WorkflowClient, run_id: str, state: str) -> bool:
    return (await client.run(run_id)).state == state
