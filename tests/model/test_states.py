"""The pure state model follows the transition table exactly."""

from __future__ import annotations

import itertools

import pytest

from lifecycle import (
    TRANSITIONS,
    InvalidTransitionError,
    LifecycleError,
    State,
    StateModel,
    Transition,
    Trigger,
    UnknownTriggerError,
)
from lifecycle.model import HINTS, MACHINE, NO_OPS, PROCESS_TRIGGERS, allowed_triggers

CONTAINER_ID = "3f2a9c1d0b7e" + "5" * 52

# Shortest trigger paths from a new model to each state, used to put a model
# into a state only through legal triggers.
PATH_TO = {
    State.CREATED: [],
    State.RUNNING: [Trigger.START],
    State.PAUSED: [Trigger.START, Trigger.PAUSE],
    State.STOPPED: [Trigger.START, Trigger.STOP],
    State.DELETED: [Trigger.REMOVE],
}

LEGAL = [
    (state, trigger, dest)
    for state, row in TRANSITIONS.items()
    if state is not None
    for trigger, dest in row.items()
]
NO_OP_PAIRS = [(state, trigger) for state, triggers in NO_OPS.items() for trigger in triggers]
ILLEGAL = [
    (state, trigger)
    for state, trigger in itertools.product(State, Trigger)
    if trigger not in TRANSITIONS[state] and trigger not in NO_OPS.get(state, ())
]


def model_in(state: State, *, name: str | None = "web") -> StateModel:
    model = StateModel(container_id=CONTAINER_ID, name=name)
    for trigger in PATH_TO[state]:
        model.apply(trigger)
    assert state == model.state
    return model


def test_state_and_trigger_values() -> None:
    """States and triggers carry DESIGN.md's names as their string values."""
    assert ["created", "running", "paused", "stopped", "deleted"] == [s.value for s in State]
    assert [
        "create", "start", "pause", "unpause", "stop", "kill", "die", "restart", "remove",
    ] == [t.value for t in Trigger]  # fmt: skip


def test_new_model_is_created_by_the_create_row() -> None:
    """A new model has taken the table's (initial) -> created row."""
    model = StateModel()
    assert State.CREATED == TRANSITIONS[None][Trigger.CREATE] == model.state
    assert Transition(None, Trigger.CREATE, State.CREATED) == model.last_transition


def test_the_table_has_the_expected_size() -> None:
    """The enumerations below cover every pair: 45 in all, split three ways."""
    assert 16 == len(LEGAL)
    assert 3 == len(NO_OP_PAIRS)
    assert 26 == len(ILLEGAL)
    assert len(State) * len(Trigger) == len(LEGAL) + len(NO_OP_PAIRS) + len(ILLEGAL)


@pytest.mark.parametrize(("state", "trigger", "dest"), LEGAL, ids=str)
def test_every_legal_pair_reaches_its_target(state: State, trigger: Trigger, dest: State) -> None:
    """check() predicts the target and apply() moves there, recording the transition."""
    model = model_in(state)
    assert dest == model.check(trigger)
    assert state == model.state  # check() changes nothing
    transition = model.apply(trigger)
    assert Transition(state, trigger, dest) == transition
    assert dest == model.state
    assert transition == model.last_transition


@pytest.mark.parametrize(("state", "trigger"), NO_OP_PAIRS, ids=str)
def test_docker_no_ops_change_nothing(state: State, trigger: Trigger) -> None:
    """start on running and stop on created/stopped return None and change nothing (HTTP 304)."""
    model = model_in(state)
    before = model.last_transition
    assert model.check(trigger) is None
    assert model.apply(trigger) is None
    assert state == model.state
    assert before == model.last_transition


@pytest.mark.parametrize(("state", "trigger"), ILLEGAL, ids=str)
def test_every_illegal_pair_raises_and_changes_nothing(state: State, trigger: Trigger) -> None:
    """Illegal transitions raise an error naming every coordinate, and nothing happens."""
    model = model_in(state)
    before = model.last_transition
    for attempt in (model.check, model.apply):
        with pytest.raises(InvalidTransitionError) as caught:
            attempt(trigger)
        error = caught.value
        assert state == error.state
        assert trigger == error.trigger
        assert allowed_triggers(state) == error.allowed
        assert CONTAINER_ID == error.container_id
        assert "web" == error.name
        assert state == model.state
        assert before == model.last_transition
        message = str(error)
        assert message.startswith(f"cannot {trigger.value} container web (3f2a9c1d0b7e): ")
        assert f"container is {state.value}" in message
        assert message == message.lower()


def test_deleted_accepts_nothing() -> None:
    """Every trigger, die and create included, is refused once a container is deleted."""
    assert {} == dict(TRANSITIONS[State.DELETED])
    model = model_in(State.DELETED)
    for trigger in Trigger:
        with pytest.raises(InvalidTransitionError, match="container is deleted"):
            model.apply(trigger)
    assert State.DELETED == model.state
    assert () == model.allowed()


def test_message_shape_matches_design() -> None:
    """The message reads exactly as DESIGN.md's example."""
    model = model_in(State.STOPPED)
    with pytest.raises(InvalidTransitionError) as caught:
        model.apply(Trigger.PAUSE)
    expected = (
        "cannot pause container web (3f2a9c1d0b7e): container is stopped "
        "(allowed: start, remove, restart)"
    )
    assert expected == str(caught.value)


def test_start_on_paused_hints_unpause() -> None:
    """Docker's hint: start on a paused container says to unpause."""
    model = model_in(State.PAUSED)
    with pytest.raises(InvalidTransitionError) as caught:
        model.apply("start")
    assert "try unpause instead" == caught.value.hint
    assert str(caught.value).endswith("; try unpause instead")


@pytest.mark.parametrize("state", [State.RUNNING, State.PAUSED])
def test_remove_on_live_container_hints_stop_or_force(state: State) -> None:
    """Docker's hint: remove on a running/paused container says stop first or force."""
    model = model_in(state)
    with pytest.raises(InvalidTransitionError) as caught:
        model.apply(Trigger.REMOVE)
    assert str(caught.value).endswith("; stop the container before removing or force remove")


def test_hints_only_name_refused_pairs() -> None:
    """A hint is attached only to a pair the table refuses."""
    for state, trigger in HINTS:
        assert trigger not in TRANSITIONS[state]
        assert trigger not in NO_OPS.get(state, ())


def test_message_without_identity() -> None:
    """An anonymous model still names the state, the trigger and what is allowed."""
    model = StateModel()
    with pytest.raises(InvalidTransitionError) as caught:
        model.apply(Trigger.UNPAUSE)
    assert (
        "cannot unpause container: container is created (allowed: start, remove, restart)"
        == str(caught.value)
    )
    assert caught.value.container_id is None
    assert caught.value.name is None


def test_allowed_lists_caller_triggers_in_table_order() -> None:
    """allowed() omits the process's own die and the no-ops, keeping the table's order."""
    assert (Trigger.PAUSE, Trigger.STOP, Trigger.KILL, Trigger.RESTART) == allowed_triggers(
        State.RUNNING
    )
    for state in State:
        allowed = allowed_triggers(state)
        assert not set(allowed) & PROCESS_TRIGGERS
        assert [t for t in TRANSITIONS[state] if t not in PROCESS_TRIGGERS] == list(allowed)


@pytest.mark.parametrize("bad", ["bogus", "START", "", 3, None])
def test_unknown_trigger_is_refused_by_name(bad: object) -> None:
    """A value that names no trigger raises UnknownTriggerError (a ValueError) naming it."""
    model = model_in(State.RUNNING)
    with pytest.raises(UnknownTriggerError) as caught:
        model.apply(bad)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, LifecycleError)
    assert repr(bad) in str(caught.value)
    assert "expected one of: create, start, pause" in str(caught.value)
    assert State.RUNNING == model.state


def test_triggers_accept_their_string_values() -> None:
    """apply() takes Trigger members and their string values alike."""
    model = StateModel()
    model.apply("start")
    model.apply(Trigger.PAUSE)
    assert State.PAUSED == model.state


def test_state_is_read_only() -> None:
    """The state can only move through the table, not by assignment."""
    model = StateModel()
    with pytest.raises(AttributeError):
        model.state = State.RUNNING  # type: ignore[misc]
    assert State.CREATED == model.state


def test_machine_is_compiled_from_the_table() -> None:
    """The transitions.Machine holds exactly the table's rows, and no shortcuts."""
    compiled = {
        (State[source], Trigger(name), State[str(transition.dest)])
        for name, event in MACHINE.events.items()
        for source, transitions in event.transitions.items()
        for transition in transitions
    }
    assert set(LEGAL) == compiled
    assert not MACHINE.models  # unbound: no add_model per container
    assert not hasattr(StateModel(), "to_running")


def test_repr_shows_name_and_state() -> None:
    """repr() tells which container and where it is."""
    assert "<StateModel web paused>" == repr(model_in(State.PAUSED))
