from __future__ import annotations

import itertools

import pytest

from schemas.provisioning import DEPLOYMENT_MACHINE, PROVISION_MACHINE
from schemas.registry import DOCUMENT_KINDS
from schemas.run import RUN_MACHINE, RunState
from schemas.state_machine import TransitionRejected


def test_run_lifecycle_allows_the_happy_path_and_nothing_out_of_order() -> None:
    path = [RunState.QUEUED, RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED]
    assert RUN_MACHINE.allows(None, path[0])
    for current, nxt in itertools.pairwise(path):
        assert RUN_MACHINE.allows(current, nxt)
    assert not RUN_MACHINE.allows(RunState.PENDING, RunState.SUCCEEDED)
    assert not RUN_MACHINE.allows(RunState.SUCCEEDED, RunState.RUNNING)
    assert not RUN_MACHINE.allows(None, RunState.RUNNING)
    assert not RUN_MACHINE.allows(RunState.QUEUED, RunState.RUNNING)
    with pytest.raises(TransitionRejected, match="from 'succeeded' to 'failed'"):
        RUN_MACHINE.check(RunState.SUCCEEDED, RunState.FAILED)


def test_terminal_states_have_no_way_out() -> None:
    assert RUN_MACHINE.terminal == {RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.TIMED_OUT}
    assert PROVISION_MACHINE.terminal == {"deprovisioned"}
    assert DEPLOYMENT_MACHINE.terminal == {"deleted"}


def test_every_non_terminal_provision_state_can_be_deprovisioned() -> None:
    # EDC may deprovision at any moment; no state may strand a consumer's resources.
    for state in PROVISION_MACHINE.transitions:
        if state not in PROVISION_MACHINE.terminal and state != "deprovisioning":
            assert PROVISION_MACHINE.allows(state, "deprovisioning"), state


def test_every_stored_kind_has_a_collection_and_a_reachable_machine() -> None:
    names = [kind.collection for kind in DOCUMENT_KINDS]
    assert len(set(names)) == len(names)
    for kind in DOCUMENT_KINDS:
        machine = kind.machine
        reachable = set(machine.initial)
        frontier = list(machine.initial)
        while frontier:
            for nxt in machine.transitions.get(frontier.pop(), frozenset()):
                if nxt not in reachable:
                    reachable.add(nxt)
                    frontier.append(nxt)
        assert reachable == set(machine.transitions), kind.collection
