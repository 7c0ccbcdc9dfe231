"""The subscription table, the periodic loops and the AsyncAPI document come from the handlers' declarations."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

import handlers
from events.catalogue import CATALOGUE
from events.envelope import Envelope, derived_id, new_event
from events.payloads.common import Payload, event_payloads
from events.payloads.run import RunQueued, RunRequested, RunSpec
from gxwf.asyncapi_doc import build_document
from gxwf.settings import Settings
from handlers.context import HandlerContext
from handlers.declare import on
from handlers.subscriptions import GROUPS, PERIODIC, SUBSCRIPTIONS

ROOT = Path(__file__).resolve().parents[2]


def _declared_in_source() -> set[tuple[str, str]]:
    """(module, function) of every function decorated with @on, read from the code rather than the registry."""
    found: set[tuple[str, str]] = set()
    for module in pkgutil.walk_packages(handlers.__path__, "handlers."):
        path = ROOT / (module.name.replace(".", "/") + ("/__init__.py" if module.ispkg else ".py"))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                for decorator in node.decorator_list:
                    if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "on":
                        found.add((module.name, node.name))
    return found


def test_every_declared_handler_is_in_the_subscription_table() -> None:
    table = {(sub.handle.__module__, sub.handle.__name__) for sub in SUBSCRIPTIONS}
    assert _declared_in_source() == table


def test_each_row_takes_its_subject_from_its_payload_and_its_group_from_its_package() -> None:
    durables = [sub.durable for sub in SUBSCRIPTIONS]
    assert len(durables) == len(set(durables))
    for sub in SUBSCRIPTIONS:
        assert sub.subject == sub.payload.subject != ""
        assert sub.handle.__module__.split(".")[1] == sub.group
        assert sub.durable.startswith(sub.group)
    assert {sub.group for sub in SUBSCRIPTIONS} == set(GROUPS)


def test_periodic_loops_read_their_interval_from_a_setting() -> None:
    settings = Settings()
    assert {loop.name for loop in PERIODIC} == {
        "jobs-dispatcher",
        "jobs-watcher",
        "jobs-log-shipper",
        "results-retention",
    }
    for loop in PERIODIC:
        assert isinstance(getattr(settings, loop.interval), float), loop.interval
        assert loop.name.startswith(loop.group)


def test_every_payload_with_a_subject_is_in_the_catalogue_and_in_asyncapi() -> None:
    payloads = set(event_payloads())
    assert payloads == {spec.payload for spec in CATALOGUE}
    document: dict[str, Any] = build_document()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {payload.subject for payload in payloads} <= addresses
    received = {
        document["channels"][op["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]
        for op in document["operations"].values()
        if op["action"] == "receive"
    }
    assert received == {sub.subject for sub in SUBSCRIPTIONS}
    committed = yaml.safe_load((ROOT / "asyncapi.yaml").read_text())
    assert committed == document


class _Sink:
    def __init__(self) -> None:
        self.events: list[Envelope[Any]] = []

    async def publish(self, event: Envelope[Any]) -> None:
        self.events.append(event)


def _context() -> tuple[HandlerContext, _Sink]:
    sink = _Sink()
    return HandlerContext(store=None, events=sink).acting_as("urn:gaiax-workflows:jobs"), sink  # type: ignore[arg-type]


def _requested(correlation: str | None) -> Envelope[RunRequested]:
    request = RunRequested(run_id="r1", consumer_id="c", asset_id="a", spec=RunSpec(command=["true"]))
    return new_event(RunRequested.subject, request, id_="cause-1", subject="r1", correlationid=correlation)


async def test_emit_derives_id_subject_correlation_and_causation_from_the_event_handled() -> None:
    ctx, sink = _context()
    queued = RunQueued(run_id="r1", consumer_id="c", position=0)
    returned = await ctx.emit(queued, about="r1", cause=_requested("tp-9"))
    (event,) = sink.events
    assert event.id == returned == derived_id("r1", "wf.run.queued")
    assert (event.type, event.subject, event.correlationid, event.causationid) == (
        "wf.run.queued",
        "r1",
        "tp-9",
        "cause-1",
    )
    assert event.source == "urn:gaiax-workflows:jobs" and event.data == queued


async def test_emit_keys_explicit_ids_and_causes_that_are_no_event() -> None:
    ctx, sink = _context()
    queued = RunQueued(run_id="r1", consumer_id="c", position=0)
    await ctx.emit(queued, about="r1", cause=_requested(None), key=("tp", "r1"))
    await ctx.emit(queued, about="r1", cause="teardown-key", event_id="given")
    await ctx.emit(queued, about="r1", cause=None, correlation="tp")
    keyed, given, periodic = sink.events
    assert keyed.id == derived_id("tp", "r1", "wf.run.queued") and keyed.correlationid == "r1"
    assert (given.id, given.causationid, given.correlationid) == ("given", "teardown-key", "r1")
    assert periodic.causationid is None and periodic.correlationid == "tp"


def test_a_subject_belongs_to_one_payload_class_and_only_events_can_be_subscribed_to() -> None:
    with pytest.raises(TypeError, match=r"belongs to events\.payloads\.run\.RunQueued"):

        class Twin(Payload):
            subject: ClassVar[str] = RunQueued.subject

    with pytest.raises(TypeError, match="names no subject"):
        on(RunSpec, durable="nothing")
