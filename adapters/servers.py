"""The servers a service connects to: NATS, the store and the object store, with their credentials."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Servers:
    nats: str
    mongo: str
    mongo_database: str
    s3: str
    s3_bucket: str
    # None: the S3 client's usual places (its environment variables, ~/.aws).
    s3_access_key: str | None
    s3_secret_key: str | None
    s3_region: str = "us-east-1"
