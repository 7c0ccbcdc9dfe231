"""Attacks on the embedded stack from a process on the same machine: every server refuses a client without the
generated credentials (and the old fixed S3 key), a component's NATS user cannot step outside its permissions,
the files that keep the secrets are private, and `gxwf up` does not print them unless asked."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aioboto3
import httpx
import nats
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig, DeliverPolicy
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

from devstack import EmbeddedStack, StackEndpoints
from events.permissions import connect_options
from events.streams import StreamSettings, ensure_streams
from events.subjects import LOG_STREAM, RUN_REQUESTED, STREAM
from gxwf.stack_users import nats_users

pytestmark = pytest.mark.servers

OLD_DEFAULT_KEY = ("gxwf", "gxwf-secret")


def anonymous(url: str) -> str:
    """`url` without its `user:password@`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.netloc.rpartition('@')[2]}"))


def embedded_only(stack: StackEndpoints, role: str) -> None:
    if role not in stack.pids:
        pytest.skip(f"the {role} server is your own (GXWF_* set): its authentication is yours")


# NATS ------------------------------------------------------------------------------------------------------


async def _connect(url: str, errors: list[Exception] | None = None) -> Client:
    async def collect(error: Exception) -> None:
        if errors is not None:
            errors.append(error)

    return await nats.connect(connect_timeout=2, allow_reconnect=False, error_cb=collect, **connect_options(url))


@pytest.mark.parametrize("how", ["no credentials", "wrong password", "unknown user"])
async def test_nats_refuses_a_client_without_the_credentials(stack: StackEndpoints, how: str) -> None:
    embedded_only(stack, "nats")
    url = {
        "no credentials": anonymous(stack.nats),
        "wrong password": with_password(stack.nats, "guessed"),
        "unknown user": with_password(stack.nats.replace("admin:", "intruder:", 1), "guessed"),
    }[how]
    with pytest.raises((NatsError, OSError)) as refused:
        await _connect(url)
    assert "authorization" in str(refused.value).lower(), refused.value


async def _violation(errors: list[Exception], subject: str) -> str:
    """The permissions violation nats-server reported for `subject` (it reports them asynchronously)."""
    for _ in range(40):
        # The client reports the subject lower-cased.
        found = [str(error).lower() for error in errors if "permissions violation" in str(error).lower()]
        if any(subject.lower() in text for text in found):
            return next(text for text in found if subject.lower() in text)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no permissions violation for {subject}; errors: {errors}")


@pytest.fixture
async def admin(stack: StackEndpoints) -> AsyncIterator[Client]:
    embedded_only(stack, "nats")
    nc = await _connect(stack.nats)
    await ensure_streams(nc.jetstream(), StreamSettings(duplicate_window_seconds=60))
    yield nc
    await nc.close()


async def _last_seq(admin: Client) -> int:
    return int((await admin.jetstream().stream_info(STREAM)).state.last_seq)


async def test_the_ingress_user_may_publish_edc_events_but_not_commands_nor_read_the_stream(
    stack: StackEndpoints, admin: Client
) -> None:
    errors: list[Exception] = []
    ingress = await _connect(stack.nats_for("edc_ingress"), errors)
    try:
        js = ingress.jetstream(timeout=2)
        # What it is for: an edc.* event is stored.
        ack = await js.publish("edc.callback.received", b"{}", stream=STREAM)
        assert ack.stream == STREAM
        before = await _last_seq(admin)
        # A run command for someone: refused by the server, and nothing reaches the stream.
        await ingress.publish(RUN_REQUESTED, b'{"consumer_id": "victim"}')
        await ingress.flush()
        assert "wf.run.requested" in await _violation(errors, RUN_REQUESTED)
        assert await _last_seq(admin) == before
        # Reading the events: neither a plain subscription nor a JetStream consumer.
        await ingress.subscribe("wf.>")
        await ingress.flush()
        await _violation(errors, "wf.>")
        with pytest.raises((NatsError, TimeoutError)):  # a timeout: the request was dropped as a violation
            await js.add_consumer(STREAM, ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        await _violation(errors, f"$JS.API.CONSUMER.CREATE.{STREAM}")
        # Nor stream administration.
        await ingress.publish(f"$JS.API.STREAM.DELETE.{STREAM}", b"")
        await ingress.flush()
        await _violation(errors, f"$JS.API.STREAM.DELETE.{STREAM}")
        assert (await admin.jetstream().stream_info(STREAM)).config.name == STREAM
    finally:
        await ingress.close()


async def test_the_workflow_api_user_may_send_its_commands_only_and_read_no_other_inbox(
    stack: StackEndpoints, admin: Client
) -> None:
    errors: list[Exception] = []
    api = await _connect(stack.nats_for("workflow_api"), errors)
    try:
        js = api.jetstream(timeout=2)
        ack = await js.publish(RUN_REQUESTED, b"{}", stream=STREAM)
        assert ack.stream == STREAM
        # An outcome only the handlers may announce.
        before = await _last_seq(admin)
        await api.publish("wf.run.succeeded", b"{}")
        await api.publish("edc.provision.requested", b"{}")
        await api.flush()
        await _violation(errors, "wf.run.succeeded")
        await _violation(errors, "edc.provision.requested")
        assert await _last_seq(admin) == before
        # Replies and deliveries meant for another component (the dashboard's inbox), or any inbox at all.
        for stolen in ("_INBOX.dashboard.>", "_INBOX.>"):
            await api.subscribe(stolen)
            await api.flush()
            await _violation(errors, stolen)
        # It may read live logs, not the events stream.
        await js.add_consumer(LOG_STREAM, ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=1))
        with pytest.raises((NatsError, TimeoutError)):  # a timeout: the request was dropped as a violation
            await js.add_consumer(STREAM, ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        await _violation(errors, f"$JS.API.CONSUMER.CREATE.{STREAM}")
    finally:
        await api.close()


async def test_the_dashboard_user_reads_but_cannot_delete_streams_or_purge(
    stack: StackEndpoints, admin: Client
) -> None:
    errors: list[Exception] = []
    board = await _connect(stack.nats_for("dashboard"), errors)
    try:
        assert (await board.jetstream(timeout=2).stream_info(STREAM)).config.name == STREAM
        for request in (f"$JS.API.STREAM.DELETE.{STREAM}", f"$JS.API.STREAM.PURGE.{STREAM}"):
            await board.publish(request, b"")
            await board.flush()
            await _violation(errors, request)
        assert (await admin.jetstream().stream_info(STREAM)).config.name == STREAM
    finally:
        await board.close()


# MongoDB wire ----------------------------------------------------------------------------------------------


async def test_the_mongodb_wire_server_refuses_commands_without_authentication(stack: StackEndpoints) -> None:
    embedded_only(stack, "mongo")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(anonymous(stack.mongo), serverSelectionTimeoutMS=3000)
    try:
        # No localhost exception: reading, writing and creating a user all need authentication.
        for attempt in (
            client.gxwf.runs.find_one(),
            client.gxwf.runs.insert_one({"_id": "planted"}),
            client.admin.command("createUser", "intruder", pwd="intruder", roles=["root"]),
            client.admin.command("listDatabases"),
        ):
            with pytest.raises(OperationFailure) as refused:
                await attempt
            assert refused.value.code == 13, refused.value  # Unauthorized
    finally:
        await client.close()
    wrong: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        with_password(stack.mongo, "guessed"), serverSelectionTimeoutMS=3000
    )
    try:
        with pytest.raises(PyMongoError, match=r"(?i)authentication failed"):
            await wrong.gxwf.runs.find_one()
    finally:
        await wrong.close()


async def test_the_services_mongodb_user_administers_no_users(stack: StackEndpoints) -> None:
    embedded_only(stack, "mongo")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo, serverSelectionTimeoutMS=3000)
    try:
        await client.security_probe.things.insert_one({"ok": True})  # what it is for
        with pytest.raises(OperationFailure) as refused:
            await client.admin.command("createUser", "intruder", pwd="intruder", roles=["root"])
        assert refused.value.code == 13
        await client.drop_database("security_probe")
    finally:
        await client.close()


# S3 ---------------------------------------------------------------------------------------------------------


async def _s3(stack: StackEndpoints, access_key: str, secret_key: str) -> Any:
    return aioboto3.Session().client(
        "s3",
        endpoint_url=stack.s3,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


async def test_s3_refuses_unsigned_requests_and_the_old_default_key(stack: StackEndpoints) -> None:
    embedded_only(stack, "s3")
    assert stack.s3_access_key and stack.s3_secret_key
    key = "security/secret.txt"
    async with await _s3(stack, stack.s3_access_key, stack.s3_secret_key) as owner:
        await owner.put_object(Bucket=stack.s3_bucket, Key=key, Body=b"private")
    async with httpx.AsyncClient(base_url=stack.s3, trust_env=False) as plain:
        for method, path in (("GET", f"/{stack.s3_bucket}/{key}"), ("GET", f"/{stack.s3_bucket}"), ("GET", "/")):
            response = await plain.request(method, path)
            assert response.status_code == 403, (method, path, response.status_code)
            assert b"private" not in response.content
        assert (await plain.put(f"/{stack.s3_bucket}/planted.txt", content=b"x")).status_code == 403
    async with await _s3(stack, *OLD_DEFAULT_KEY) as old:
        for attempt in (
            old.list_objects_v2(Bucket=stack.s3_bucket),
            old.get_object(Bucket=stack.s3_bucket, Key=key),
            old.put_object(Bucket=stack.s3_bucket, Key="planted.txt", Body=b"x"),
        ):
            with pytest.raises(ClientError) as refused:
                await attempt
            assert refused.value.response["Error"]["Code"] in ("InvalidAccessKeyId", "AccessDenied")


def _weed_flag(stack: StackEndpoints, flag: str) -> int:
    for argument in psutil.Process(stack.pids["s3"]).cmdline():
        if argument.startswith(f"-{flag}="):
            return int(argument.split("=", 1)[1])
    raise AssertionError(f"weed was started without -{flag}")


async def test_the_object_store_behind_s3_is_not_open_either(stack: StackEndpoints) -> None:
    """SeaweedFS's filer serves every object over HTTP on its own port: it wants a signed token too."""
    embedded_only(stack, "s3")
    assert stack.s3_access_key and stack.s3_secret_key
    key = "security/behind.txt"
    async with await _s3(stack, stack.s3_access_key, stack.s3_secret_key) as owner:
        await owner.put_object(Bucket=stack.s3_bucket, Key=key, Body=b"private")
    filer = f"http://127.0.0.1:{_weed_flag(stack, 'filer.port')}"
    async with httpx.AsyncClient(base_url=filer, trust_env=False) as plain:
        read = await plain.get(f"/buckets/{stack.s3_bucket}/{key}")
        assert read.status_code == 401 and b"private" not in read.content
        # Writing an identity of one's own into the filer's IAM store would grant any access.
        planted = await plain.put("/etc/iam/identity.json", files={"file": ("identity.json", b"{}")})
        assert planted.status_code == 401


# The files -------------------------------------------------------------------------------------------------


PRIVATE_FILES = (
    "credentials.json",
    "stack.json",
    "nats/nats.conf",
    "seaweedfs/s3.json",
    "seaweedfs/security.toml",
    "secantusd/users.sha256",
)


async def test_secrets_are_kept_private_and_reused_across_restarts(tmp_path: Path) -> None:
    from devstack.runner import _write_stack_file

    state = tmp_path / "state"
    async with EmbeddedStack(state, nats_users=nats_users()) as first:
        _write_stack_file(state, first)
        for name in PRIVATE_FILES:
            mode = stat.S_IMODE((state / name).stat().st_mode)
            assert mode == 0o600, f"{name}: {oct(mode)}"
        secrets = json.loads((state / "credentials.json").read_text())
        assert "gxwf-secret" not in secrets.values()
    (state / "credentials.json").chmod(0o644)  # as a careless copy would leave it
    async with EmbeddedStack(state, nats_users=nats_users()) as second:
        assert json.loads((state / "credentials.json").read_text()) == secrets
        assert stat.S_IMODE((state / "credentials.json").stat().st_mode) == 0o600
        # The same passwords on the new ports: URLs written elsewhere keep working after a restart.
        assert urlsplit(second.nats).password == urlsplit(first.nats).password
        assert urlsplit(second.mongo).password == urlsplit(first.mongo).password
        assert second.s3_credentials == first.s3_credentials
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(second.mongo, serverSelectionTimeoutMS=3000)
        await client.admin.command("ping")
        await client.probe.things.insert_one({"ok": True})
        await client.close()


# `gxwf up` ----------------------------------------------------------------------------------------------------


def _start_up(state: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GXWF_", "AWS_"))}
    env["COLUMNS"] = "200"
    return subprocess.Popen(
        [sys.executable, "-m", "gxwf", "up", "--state-dir", str(state), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _output_until(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = await asyncio.to_thread(proc.stderr.readline)
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed; output:\n{''.join(seen)}")


async def test_up_names_where_the_secrets_are_and_prints_them_only_when_asked(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = _start_up(state)
    try:
        output = await _output_until(proc, "Running.")
        written = json.loads((state / "endpoints.json").read_text())
        assert stat.S_IMODE((state / "endpoints.json").stat().st_mode) == 0o600
        # What another shell's commands use: credentials in the URLs, S3's keys beside them.
        assert urlsplit(written["nats"]).password and urlsplit(written["mongo"]).password
        assert set(written["s3_credentials"]) == {"access_key", "secret_key"}
        assert set(written["nats_users"]) == {"handlers", "edc_ingress", "workflow_api", "dashboard", "tenant_gateway"}
        secrets = [
            urlsplit(written["nats"]).password,
            urlsplit(written["mongo"]).password,
            written["s3_credentials"]["secret_key"],
            *(urlsplit(url).password for url in written["nats_users"].values()),
            (state / "edc-api-key").read_text().strip(),
            (state / "dashboard-token").read_text().strip(),
            (state / "dashboard-admin-token").read_text().strip(),
        ]
        leaked = [secret for secret in secrets if secret and secret in output]
        assert leaked == [], output
        assert str(state / "credentials.json") in output and str(state / "endpoints.json") in output
        assert "--show-secrets" in output
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    assert proc.returncode == 0
    shown = _start_up(state, "--show-secrets")
    try:
        output = await _output_until(shown, "Running.")
        assert (state / "edc-api-key").read_text().strip() in output
        assert written["s3_credentials"]["secret_key"] in output
    finally:
        shown.send_signal(signal.SIGTERM)
        await asyncio.to_thread(shown.wait, 60)
