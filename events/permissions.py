"""What each component may do on the bus: the NATS subjects it may publish to and subscribe to.

The embedded stack makes a NATS user per component with these permissions (gxwf.stack_users); an operator's own
NATS server can use the same table. JetStream is driven through request subjects, so a permission to read a
stream is a permission to publish certain `$JS.API.*` requests:

- publishing an event (`js.publish`) is a plain publish to its subject whose acknowledgement comes back to the
  client's inbox: the subject, and a subscription to the inbox;
- reading a stream through a consumer (ordered consumers for live logs and feeds, consumers listed on the
  dashboard) needs STREAM.INFO/NAMES, CONSUMER.CREATE/INFO/DELETE/LIST on that stream, MSG.GET for single
  messages, and `$JS.FC.<stream>.>` for the flow-control replies of ordered consumers;
- every reply, JetStream's included, goes to `_INBOX.<user>.>`: a client connects with that inbox prefix
  (`connect_options`) and may subscribe only to its own, so it never sees another component's replies or
  deliveries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from events.servers import credentials, nats_servers, without_credentials
from events.subjects import DLQ_STREAM, LOG_STREAM, RUN_REQUESTED, RUN_STOP_REQUESTED, STREAM, STREAM_SUBJECTS

INBOX: Final = "_INBOX"


@dataclass(frozen=True)
class BusPermissions:
    """None: everything. Each component may also subscribe to its own inbox (`inbox_prefix`)."""

    publish: tuple[str, ...] | None
    subscribe: tuple[str, ...] | None


def _read_stream(stream: str) -> tuple[str, ...]:
    """The JetStream requests of a client reading `stream` through consumers it creates and deletes."""
    api = "$JS.API"
    return (
        f"{api}.INFO",
        f"{api}.STREAM.NAMES",
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.STREAM.MSG.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}.>",
        f"{api}.CONSUMER.CREATE.{stream}",
        f"{api}.CONSUMER.CREATE.{stream}.>",
        f"{api}.CONSUMER.INFO.{stream}.>",
        f"{api}.CONSUMER.DELETE.{stream}.>",
        f"{api}.CONSUMER.LIST.{stream}",
        f"{api}.CONSUMER.NAMES.{stream}",
        f"{api}.CONSUMER.MSG.NEXT.{stream}.>",
        f"$JS.FC.{stream}.>",
        f"$JS.ACK.{stream}.>",
    )


HANDLERS: Final = "handlers"
EDC_INGRESS: Final = "edc_ingress"
WORKFLOW_API: Final = "workflow_api"
DASHBOARD: Final = "dashboard"
TENANT_GATEWAY: Final = "tenant_gateway"

COMPONENTS: Final[dict[str, BusPermissions]] = {
    # They create the streams and consumers and publish every event: everything.
    HANDLERS: BusPermissions(publish=None, subscribe=None),
    # Connectors' requests and callbacks become edc.* events; it reads nothing.
    EDC_INGRESS: BusPermissions(publish=("edc.>",), subscribe=()),
    # The two commands a consumer gives, and runs' live logs read back.
    WORKFLOW_API: BusPermissions(publish=(RUN_REQUESTED, RUN_STOP_REQUESTED, *_read_stream(LOG_STREAM)), subscribe=()),
    # The same, for the per-consumer WorkflowApis it serves.
    TENANT_GATEWAY: BusPermissions(
        publish=(RUN_REQUESTED, RUN_STOP_REQUESTED, *_read_stream(LOG_STREAM)), subscribe=()
    ),
    # Reads every stream; re-publishing a dead letter publishes its original event again, on its own subject.
    DASHBOARD: BusPermissions(
        publish=(
            *STREAM_SUBJECTS,
            *_read_stream(STREAM),
            *_read_stream(DLQ_STREAM),
            *_read_stream(LOG_STREAM),
        ),
        subscribe=(),
    ),
}


def manages_streams(url: str) -> bool:
    """Whether the user of `url` may create and update streams: not one of the restricted components' users."""
    found = credentials(url)
    rules = COMPONENTS.get(found[0] if found else "")
    return rules is None or rules.publish is None


def inbox_prefix(user: str) -> str:
    return f"{INBOX}.{user}"


def connect_options(url: str) -> dict[str, Any]:
    """nats.connect / NatsBroker options for `url`, one server or a comma-separated list: `servers`, the
    credentials, and for a URL naming a user that user's own inbox prefix.

    The credentials go as options, not inside each server URL: the client also tries the servers a cluster
    announces (INFO connect_urls), and would try those without them.
    """
    options: dict[str, Any] = {"servers": [without_credentials(server) for server in nats_servers(url)]}
    found = credentials(url)
    if found is None:
        return options
    user, password = found
    options |= {"token": user} if password is None else {"user": user, "password": password}
    # A name that is no subject token (an outside server's user may be called anything) keeps the default inbox.
    if password is not None and _TOKEN.fullmatch(user):
        options["inbox_prefix"] = inbox_prefix(user)
    return options


_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
