"""A NATS URL listing a cluster's servers: what a client is given to connect with, and what output shows."""

from __future__ import annotations

import pytest

from events.permissions import connect_options, manages_streams
from events.servers import nats_servers
from events.streams import replicas_for
from gxwf.commands.up import shown_url

CLUSTER = (
    "nats://workflow_api:pw1@127.0.0.1:4222, nats://workflow_api:pw1@127.0.0.1:4223,nats://workflow_api:pw1@h:4224"
)


def test_every_server_is_listed_in_order() -> None:
    assert nats_servers(CLUSTER) == [
        "nats://workflow_api:pw1@127.0.0.1:4222",
        "nats://workflow_api:pw1@127.0.0.1:4223",
        "nats://workflow_api:pw1@h:4224",
    ]
    with pytest.raises(ValueError, match="no NATS server URL"):
        nats_servers(" , ")


def test_a_client_gets_every_server_and_the_credentials_once() -> None:
    """The servers without credentials (the client also tries those a cluster announces, which come without),
    the user's own credentials and inbox prefix as options."""
    assert connect_options(CLUSTER) == {
        "servers": ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://h:4224"],
        "user": "workflow_api",
        "password": "pw1",
        "inbox_prefix": "_INBOX.workflow_api",
    }
    assert connect_options("nats://127.0.0.1:4222") == {"servers": ["nats://127.0.0.1:4222"]}
    assert connect_options("nats://s3cret-token@127.0.0.1:4222") == {
        "servers": ["nats://127.0.0.1:4222"],
        "token": "s3cret-token",
    }


def test_a_restricted_users_list_manages_no_streams() -> None:
    assert not manages_streams(CLUSTER)
    assert manages_streams(CLUSTER.replace("workflow_api", "handlers"))


def test_stream_replicas_follow_the_listed_servers_up_to_three() -> None:
    assert replicas_for("nats://127.0.0.1:4222") == 1
    assert replicas_for(CLUSTER) == 3
    assert replicas_for(",".join([CLUSTER, CLUSTER])) == 3
    assert replicas_for(CLUSTER, 2) == 2


def test_output_masks_the_password_of_every_server() -> None:
    assert shown_url(CLUSTER) == (
        "nats://workflow_api:***@127.0.0.1:4222,nats://workflow_api:***@127.0.0.1:4223,nats://workflow_api:***@h:4224"
    )
