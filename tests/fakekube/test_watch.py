"""List+watch as controllers and watchers use it: resume from a resourceVersion, selections, 410 Gone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiClient, ApiException, CoreV1Api

from fakekube import FakeKubeServer
from tests.fakekube.conftest import NAMESPACE


async def _events(core: CoreV1Api, expected: int | None = None, **kwargs: Any) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of each event, until `expected` came or the server ended the watch."""
    found = []
    watcher = watch.Watch()
    async with watcher.stream(core.list_namespaced_config_map, NAMESPACE, **kwargs) as stream:
        async for event in stream:
            meta = event["object"].metadata
            found.append((event["type"], meta.name, meta.resource_version))
            if len(found) == expected:
                watcher.stop()
    return found


async def test_resume_from_a_resource_version_misses_and_repeats_nothing(api: ApiClient) -> None:
    core = CoreV1Api(api)
    for n in range(3):
        await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": f"before-{n}"}})
    listing = await core.list_namespaced_config_map(NAMESPACE)
    start = listing.metadata.resource_version

    async def writes() -> None:
        await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "during"}})
        await core.patch_namespaced_config_map("before-1", NAMESPACE, {"data": {"k": "v"}})
        await core.delete_namespaced_config_map("before-2", NAMESPACE)

    await writes()  # all of these happen after the listing, before the watch starts
    first = await _events(core, 3, resource_version=start, timeout_seconds=5)
    await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "after"}})
    resumed = await _events(core, 1, resource_version=first[-1][2], timeout_seconds=5)

    assert [(kind, name) for kind, name, _ in first] == [
        ("ADDED", "during"),
        ("MODIFIED", "before-1"),
        ("DELETED", "before-2"),
    ]
    assert [(kind, name) for kind, name, _ in resumed] == [("ADDED", "after")]
    versions = [int(rv) for _, _, rv in first + resumed]
    assert versions == sorted(set(versions))


async def test_watch_without_a_version_starts_with_the_current_objects(api: ApiClient) -> None:
    core = CoreV1Api(api)
    await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "existing"}})

    events = await _events(core, 2, timeout_seconds=5)

    assert sorted((kind, name) for kind, name, _ in events) == [("ADDED", "existing"), ("ADDED", "kube-root-ca.crt")]


async def test_watch_ends_at_timeout_seconds(api: ApiClient) -> None:
    started = time.monotonic()
    await _events(CoreV1Api(api), timeout_seconds=1, resource_version="1")
    assert 0.9 <= time.monotonic() - started < 3


async def test_a_label_selection_sees_objects_enter_and_leave_it(api: ApiClient) -> None:
    core = CoreV1Api(api)
    created = await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "mover"}})

    async def relabel() -> None:
        await asyncio.sleep(0.1)
        await core.patch_namespaced_config_map("mover", NAMESPACE, {"metadata": {"labels": {"run": "r1"}}})
        await core.patch_namespaced_config_map("mover", NAMESPACE, {"metadata": {"labels": {"run": "r2"}}})

    task = asyncio.create_task(relabel())
    events = await _events(
        core, 2, label_selector="run=r1", resource_version=created.metadata.resource_version, timeout_seconds=5
    )
    await task

    assert [(kind, name) for kind, name, _ in events] == [("ADDED", "mover"), ("DELETED", "mover")]


async def test_a_compacted_version_is_410_gone(api: ApiClient, kube: FakeKubeServer) -> None:
    core = CoreV1Api(api)
    old = await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "old"}})
    await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "newer"}})
    kube.compact()

    with pytest.raises(ApiException) as expired:
        await _events(core, resource_version=old.metadata.resource_version, timeout_seconds=1)

    assert expired.value.status == 410
