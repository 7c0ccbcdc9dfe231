"""Are NATS, MongoDB and S3 answering, and what the NATS monitor says about JetStream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from nats.aio.client import Client

from ports.objects import ObjectStore
from ports.queries import OpsQueries


@dataclass
class ServerHealth:
    name: str
    status: str  # "ok" or what went wrong
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


async def nats_health(nc: Client, monitor_url: str | None) -> ServerHealth:
    if not nc.is_connected:
        return ServerHealth("NATS", "disconnected")
    facts: dict[str, Any] = {"server": nc.connected_url.netloc if nc.connected_url else "?"}
    # A cluster's monitors, comma-separated: the first that answers speaks for the cluster.
    for url in [part.strip() for part in (monitor_url or "").split(",") if part.strip()]:
        try:
            async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
                varz, jsz = (await http.get("/varz")).json(), (await http.get("/jsz")).json()
            facts.pop("monitor", None)
            facts.update(
                version=varz.get("version"),
                connections=varz.get("connections"),
                mem_mb=round(int(varz.get("mem") or 0) / 2**20, 1),
                cpu_percent=varz.get("cpu"),
                streams=jsz.get("streams"),
                consumers=jsz.get("consumers"),
                messages=jsz.get("messages"),
                stored_mb=round(int(jsz.get("bytes") or 0) / 2**20, 1),
            )
            break
        except (httpx.HTTPError, ValueError) as error:
            facts["monitor"] = f"unreachable: {type(error).__name__}"
    return ServerHealth("NATS", "ok", facts)


async def mongo_health(queries: OpsQueries) -> ServerHealth:
    return ServerHealth("MongoDB", await queries.health(), {"database": queries.database})


async def s3_health(objects: ObjectStore | None, bucket: str) -> ServerHealth:
    if objects is None:
        return ServerHealth("S3", "not configured")
    try:
        async with asyncio.timeout(3.0):
            await objects.list("gxwf-health-probe/")
    except Exception as error:  # any failure is the answer here, shown to the operator
        return ServerHealth("S3", f"error: {type(error).__name__}", {"bucket": bucket})
    return ServerHealth("S3", "ok", {"bucket": bucket})
