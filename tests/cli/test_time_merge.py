"""The merge of several streams by store time, and the consumer filters a tail asks each stream for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gxwf.tail import stream_filters
from gxwf.time_merge import TimeMerge

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_source_that_may_still_deliver_older_items_holds_the_others_back() -> None:
    merge: TimeMerge[str] = TimeMerge(2)
    merge.add(0, at(1), 1, "wf-1", pending=5)
    merge.add(0, at(3), 2, "wf-3", pending=4)
    assert list(merge.ready()) == []  # the second stream's first item may be older than both
    merge.add(1, at(2), 1, "dlq-2", pending=3)
    assert list(merge.ready()) == ["wf-1", "dlq-2"]  # wf-3 waits: stream 1 may still hold an older one
    merge.add(1, at(4), 2, None, pending=0)  # not shown, but it says stream 1 is caught up
    assert list(merge.ready()) == ["wf-3"]
    assert not merge.all_caught_up and merge.empty
    merge.add(0, at(5), 3, "wf-5", pending=0)
    assert list(merge.ready()) == ["wf-5"]
    assert merge.all_caught_up


def test_caught_up_sources_pass_live_items_at_once() -> None:
    merge: TimeMerge[str] = TimeMerge(2)
    merge.caught_up(0)
    merge.caught_up(1)
    merge.add(1, at(9), 7, "dlq-live", pending=0)
    assert list(merge.ready()) == ["dlq-live"]


@pytest.mark.parametrize(
    ("patterns", "held", "expected"),
    [
        ([">"], ["edc.>", "wf.>"], ["edc.>", "wf.>"]),
        (["wf.>", "wf.run.>"], ["edc.>", "wf.>"], ["wf.>"]),
        (["wf.run.requested", "wf.run.requested"], ["edc.>", "wf.>"], ["wf.run.requested"]),
        (["*.run.>"], ["edc.>", "wf.>"], ["*.run.>"]),
        (["wf.run.>"], ["dlq.>"], []),
        (["dlq.wf.run.>", "wf.run.>"], ["dlq.>"], ["dlq.wf.run.>"]),
    ],
)
def test_filters_are_narrowed_to_the_stream(patterns: list[str], held: list[str], expected: list[str]) -> None:
    assert stream_filters(patterns, held) == expected
