"""Re-derive result documents from the result facts on the bus (`gxwf store rebuild`), as the publisher and the
retention pass left them: published (manifest, files, log), failed (the reason), expired.

The publisher creates a result under the id of the run's end fact, settles it under the same id, and announces
it with that fact as the cause: so the facts name every id the document's history holds. Conditional steps,
once per (event, target), as the handlers' own: a document at or past a fact is left alone.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from events.envelope import Envelope
from events.payloads.result import ResultExpired, ResultPublished, ResultPublishFailed
from handlers.results.publish import output_key
from ports.store import Outcome, StateStore
from schemas.names import result_prefix
from schemas.provisioning import ResultDocument, ResultState


@dataclass
class ResultsRebuilt:
    results: int = 0
    created: int = 0
    transitions: int = 0


def _file(run_id: str, consumer_id: str, name: str, size: int, sha256: str) -> dict[str, Any]:
    # The object store types an output by its name when it is uploaded (adapters/s3_objects.py): the same here.
    kind = mimetypes.guess_type(name.rsplit("/", 1)[-1])[0] or "application/octet-stream"
    key = output_key(result_prefix(consumer_id, run_id), name)
    return {"name": name, "key": key, "size": size, "sha256": sha256, "content_type": kind}


async def rebuild_results(events: Sequence[Envelope[Any]], store: StateStore) -> ResultsRebuilt:
    """Apply the result facts among `events` (stream order) to `store`."""
    done = ResultsRebuilt()
    seen: set[str] = set()
    for event in events:
        data = event.data
        if isinstance(data, ResultPublished | ResultPublishFailed):
            if event.causationid is None:
                continue  # not the publisher's: it always names the run's end as the cause
            seen.add(data.run_id)
            fresh = ResultDocument(id=data.run_id, state=ResultState.COLLECTING, consumer_id=data.consumer_id)
            if await store.create(fresh, event_id=event.causationid):
                done.created += 1
            if isinstance(data, ResultPublished):
                files = [_file(data.run_id, data.consumer_id, f.name, f.size, f.sha256) for f in data.files]
                fields: dict[str, Any] = {"manifest_key": data.manifest_key, "files": files, "log_key": data.log_key}
                result = await store.transition(
                    ResultDocument, data.run_id, ResultState.PUBLISHED, event_id=event.causationid, fields=fields
                )
            else:
                result = await store.transition(
                    ResultDocument,
                    data.run_id,
                    ResultState.FAILED,
                    event_id=event.causationid,
                    reason=data.reason,
                    fields={"reason": data.reason},
                )
        elif isinstance(data, ResultExpired):
            seen.add(data.run_id)
            result = await store.transition(
                ResultDocument,
                data.run_id,
                ResultState.EXPIRED,
                event_id=event.id,
                reason=f"older than the retention of {data.retention_days:g} days",
            )
        else:
            continue
        if result.outcome is Outcome.APPLIED:
            done.transitions += 1
    done.results = len(seen)
    return done
