"""The servers of the test stack as GXWF_* variables, for the CLI processes tests start."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack import StackEndpoints


def server_env(stack: StackEndpoints, component: str | None = None) -> dict[str, str]:
    """URLs with credentials (NATS: `component`'s own user, else the unrestricted one) and the S3 keys."""
    env = {
        "GXWF_NATS_URL": stack.nats_for(component) if component else stack.nats,
        "GXWF_MONGO_URL": stack.mongo,
        "GXWF_S3_ENDPOINT": stack.s3,
    }
    if stack.s3_access_key and stack.s3_secret_key:
        env |= {"GXWF_S3_ACCESS_KEY": stack.s3_access_key, "GXWF_S3_SECRET_KEY": stack.s3_secret_key}
    return env
