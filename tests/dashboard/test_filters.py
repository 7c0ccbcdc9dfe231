"""The filter rules the dashboard and `gxwf events tail` share, and what redaction hides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.filters import EventFilter, FilterError, parse_last_event_id, parse_since, subject_matches
from events.redaction import REDACTED, may_hold_secret, redact, redact_text


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("wf.run.>", "wf.run.succeeded", True),
        ("wf.run.>", "wf.run", False),
        ("wf.*.ready", "wf.deployment.ready", True),
        ("wf.*.ready", "wf.deployment.x.ready", False),
        ("edc.>", "wf.run.queued", False),
        ("wf.run.queued", "wf.run.queued", True),
        (">", "edc.transfer.started", True),
    ],
)
def test_subject_wildcards_follow_nats(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


def test_every_criterion_must_hold() -> None:
    event = {
        "correlationid": "tp-1",
        "data": {"consumer_id": "did:web:a", "run_id": "r-9", "transfer_process_id": "tp-1"},
    }
    assert EventFilter.build(["wf.>"], consumer="did:web:a", transfer="tp-1").matches("wf.run.queued", event)
    assert not EventFilter.build(["edc.>"]).matches("wf.run.queued", event)
    assert not EventFilter.build(consumer="did:web:b").matches("wf.run.queued", event)
    assert EventFilter.build(run="r-9").matches("wf.run.queued", event)
    assert EventFilter.build(text="DID:WEB:A").matches("wf.run.queued", event)
    assert not EventFilter.build(text="nothing").matches("wf.run.queued", event)
    assert EventFilter.build(["", "wf.run.>"], consumer="").query() == [("subject", "wf.run.>")]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"subjects": ["wf.>.x"]}, "subject"),
        ({"subjects": ["wf.ru*"]}, "subject"),
        ({"subjects": ["wf run"]}, "subject"),
        ({"subjects": [f"wf.{i}" for i in range(9)]}, "subject"),
        ({"transfer": "t" * 201}, "transfer"),
    ],
)
def test_bad_filters_name_their_field(kwargs: dict[str, object], field: str) -> None:
    subjects = kwargs.pop("subjects", [])
    with pytest.raises(FilterError) as error:
        EventFilter.build(subjects, **kwargs)  # type: ignore[arg-type]
    assert error.value.field == field


def test_since_is_a_sequence_a_time_or_an_age() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_since("42").sequence == 42
    assert parse_since("15m", now=now).time == now - timedelta(minutes=15)
    assert parse_since("2026-12-01T10:00:00Z").time == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_since("2026-12-01T10:00:00").time == datetime(2026, 12, 1, 10, tzinfo=UTC)  # naive is UTC
    assert parse_since("").new_only and parse_since(None).new_only
    for bad in ("0", "-3", "soon", "15 minutes", "9" * 70):
        with pytest.raises(FilterError):
            parse_since(bad)
    assert parse_last_event_id("17") == 17 and parse_last_event_id(None) is None
    for bad in ("0", "x", "1.5", "9" * 25):
        with pytest.raises(FilterError):
            parse_last_event_id(bad)


def test_redaction_by_key_and_by_shape() -> None:
    shown = redact(
        {
            "authCode": "abc",
            "api_key_header": "x-api-key",
            "properties": [
                {"Authorization": "Bearer t"},
                {"secretKey": "s", "note": "eyJhbGciOiJIUzI1.eyJzdWIiOiIx.sig"},
            ],
            "run_id": "r-1",
            "password": None,
        }
    )
    assert shown["authCode"] == REDACTED and shown["api_key_header"] == "x-api-key"
    assert shown["properties"][0]["Authorization"] == REDACTED
    assert shown["properties"][1] == {"secretKey": REDACTED, "note": REDACTED}
    assert shown["run_id"] == "r-1" and shown["password"] is None
    assert not may_hold_secret(b'{"run_id":"r-1","state":"queued"}') and may_hold_secret(b'{"authCode":"x"}')


def test_secrets_inside_texts_are_redacted() -> None:
    message = "1 validation error: input_value={'authCode': 'abc123', 'x': 1} header Authorization: Bearer zz.yy"
    shown = redact_text(message)
    assert "abc123" not in shown and "zz.yy" not in shown
    assert "'authCode': '[redacted]'" in shown and "'x': 1" in shown
    assert redact({"error": {"message": "token=s3cr3t; next"}})["error"]["message"] == "token=[redacted]; next"
    assert redact_text("run r-1 failed with exit code 3") == "run r-1 failed with exit code 3"
