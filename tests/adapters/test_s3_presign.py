"""Presigned URLs as S3 takes them: SigV4 (S3 refuses SigV2 in most regions), scoped to the store's region, and
a PUT's announced sha256 among the signed headers, where S3 checks it (a checksum in the query it ignores).

Signing needs no server; what SeaweedFS does with these URLs is in tests/security/test_presigned_uploads.py."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.s3_objects import S3ObjectStore, checksum_header

# us-east-1 (the default, and the embedded stack's) is where botocore would otherwise presign with SigV2.
REGIONS = pytest.mark.parametrize("region", ["us-east-1", "eu-central-1"])


async def _query(method: str, region: str, **kwargs: str) -> dict[str, str]:
    objects = S3ObjectStore("http://127.0.0.1:9", "gxwf", access_key="AK", secret_key="SK", region=region)
    try:
        url = await objects.presigned_url(method, "inputs/did%3Aweb%3Ax/in-1.presigned", expires_seconds=60, **kwargs)
    finally:
        await objects.close()
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@REGIONS
async def test_a_put_url_is_sigv4_and_signs_the_checksum_as_a_header(region: str) -> None:
    sha256 = hashlib.sha256(b"data").hexdigest()
    query = await _query("PUT", region, sha256=sha256, content_type="text/plain")
    assert query.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256", query
    assert f"/{region}/s3/aws4_request" in query["X-Amz-Credential"]
    assert query["X-Amz-SignedHeaders"].split(";") == ["content-type", "host", "x-amz-checksum-sha256"]
    # Not (only) in the query, where S3 would not check it.
    assert "x-amz-checksum-sha256" not in {name.lower() for name in query}
    assert checksum_header(sha256) == "Om6weQ85rIfJTzhWst0sXREOaBFgImGpqSPTuyOtyLc="


@REGIONS
async def test_a_get_url_is_sigv4_and_needs_no_header(region: str) -> None:
    query = await _query("GET", region)
    assert query.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256", query
    assert query["X-Amz-SignedHeaders"] == "host"
