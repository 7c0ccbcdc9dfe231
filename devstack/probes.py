"""Readiness checks. Each returns None when the server does its job, otherwise why not yet.

The drivers are imported inside the checks so that importing devstack stays cheap for the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

_TIMEOUT = 2.0
_S3_PROBE_KEY = ".devstack-ready"


async def http_ok(url: str) -> str | None:
    import httpx

    # trust_env=False: an HTTP(S)_PROXY in the environment must not route loopback checks elsewhere.
    async with httpx.AsyncClient(timeout=_TIMEOUT, trust_env=False) as client:
        try:
            response = await client.get(url)
        except httpx.HTTPError as error:
            return f"GET {url}: {error!r}"
    return None if response.status_code == 200 else f"GET {url}: HTTP {response.status_code}"


async def jetstream_cluster(monitor: str, name: str, size: int) -> str | None:
    """None once the server of `monitor` is in JetStream cluster `name` of `size` servers that has a meta leader,
    and every stream it holds has a leader (its /jsz): the cluster can place streams and answers for its own."""
    import httpx

    url = f"{monitor}/jsz?accounts=true&streams=true"
    async with httpx.AsyncClient(timeout=_TIMEOUT, trust_env=False) as client:
        try:
            found = (await client.get(url)).json()
            meta = found.get("meta_cluster") or {}
            streams = [
                stream
                for account in found.get("account_details") or []
                for stream in account.get("stream_detail") or []
            ]
        except (httpx.HTTPError, ValueError, AttributeError, KeyError, TypeError) as error:
            return f"GET {url}: {error!r}"
    if meta.get("name") != name or not meta.get("leader"):
        return f"GET {url}: no JetStream meta leader in cluster {name} yet"
    # With /healthz (contact with the meta leader) this is each node's own view of the whole cluster.
    if meta.get("cluster_size") != size:
        return f"GET {url}: cluster {name} of {meta.get('cluster_size')} servers, not {size}"
    # After a restart: the streams this node holds answer only once each has elected its leader again.
    leaderless = [str(stream.get("name")) for stream in streams if not (stream.get("cluster") or {}).get("leader")]
    return f"GET {url}: streams without a leader yet: {', '.join(leaderless)}" if leaderless else None


async def mongo_ping(url: str) -> str | None:
    from pymongo import AsyncMongoClient
    from pymongo.errors import PyMongoError

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=int(_TIMEOUT * 1000), connectTimeoutMS=int(_TIMEOUT * 1000)
    )
    try:
        await client.admin.command("ping")
    except PyMongoError as error:
        return f"ping: {error}"
    finally:
        await client.close()
    return None


async def mongo_set_users(url: str, users: dict[str, tuple[str, list[dict[str, str]]]]) -> str | None:
    """Each user (name -> password, roles) created in `admin`, or updated to that password and those roles, and
    no other user left there; then the server's data flushed to disk, so that killing it loses none of this."""
    from pymongo import AsyncMongoClient
    from pymongo.errors import OperationFailure, PyMongoError

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=int(_TIMEOUT * 1000))
    try:
        for name, (password, roles) in users.items():
            try:
                await client.admin.command("createUser", name, pwd=password, roles=roles)
            except OperationFailure as error:
                if error.code != _MONGO_DUPLICATE_USER:
                    raise
                await client.admin.command("updateUser", name, pwd=password, roles=roles)
        # Anyone may connect while the server runs without --auth: a user someone else slipped in is removed.
        for found in (await client.admin.command("usersInfo", 1)).get("users", []):
            if found.get("user") not in users:
                await client.admin.command("dropUser", found["user"])
        await client.admin.command("fsync")
    except PyMongoError as error:
        return str(error)
    finally:
        await client.close()
    return None


_MONGO_DUPLICATE_USER = 51003


async def s3_bucket_writable(endpoint: str, bucket: str, access_key: str, secret_key: str) -> str | None:
    """Creates `bucket` if missing, then writes and deletes an object in it, with requests signed by the keys.

    Answering S3 requests is not enough: SeaweedFS lists buckets before its volume server has joined the
    master, and until then every upload fails.
    """
    import httpx

    sign = _s3_signer(access_key, secret_key)
    async with httpx.AsyncClient(base_url=endpoint, timeout=_TIMEOUT, trust_env=False, auth=sign) as client:
        try:
            created = await client.put(f"/{bucket}")
            # 409: the bucket exists already (BucketAlreadyOwnedByYou), as after every restart.
            if created.status_code not in (200, 409):
                return f"create bucket {bucket}: {_s3_failure(created)}"
            written = await client.put(f"/{bucket}/{_S3_PROBE_KEY}", content=b"ready")
            if written.status_code != 200:
                return f"write to bucket {bucket}: {_s3_failure(written)}"
            await client.delete(f"/{bucket}/{_S3_PROBE_KEY}")
        except httpx.HTTPError as error:
            return f"{endpoint}: {error!r}"
    return None


def _s3_signer(access_key: str, secret_key: str) -> Callable[[httpx.Request], httpx.Request]:
    """An httpx auth hook signing each request with AWS Signature V4, by botocore (aioboto3 brings it)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signer = S3SigV4Auth(Credentials(access_key, secret_key), "s3", "us-east-1")

    def sign(request: httpx.Request) -> httpx.Request:
        unsigned = AWSRequest(method=request.method, url=str(request.url), data=request.content)
        signer.add_auth(unsigned)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256"):
            request.headers[name] = str(unsigned.headers[name])
        return request

    return sign


def _s3_failure(response: httpx.Response) -> str:
    code = re.search(r"<Code>([^<]+)</Code>", response.text)
    return f"HTTP {response.status_code}" + (f" {code.group(1)}" if code else "")
