"""The lifecycle state model: states, triggers, and the one transition table.

Two rules govern this module (after h11's ``_state.py``):

1. Everything that decides whether a container may change state lives here.
   The engine, the diagrams and the error messages all read ``TRANSITIONS``;
   none of them keeps a second copy, so they cannot drift apart.
2. This module does not know that processes exist. It imports no anyio, os,
   signal, time or any I/O (a test checks its AST): it is a pure function of
   (state, trigger), testable without a single child process.

Theory of operation
-------------------
A container's state moves only through a trigger. ``StateModel.check``
looks the trigger up in the table and answers one of three things: the
state it leads to, ``None`` for one of Docker's no-ops ("304 Not Modified":
``start`` on a running container, ``stop`` on a created or stopped one), or
``InvalidTransitionError`` with nothing changed. The engine checks first,
then awaits the side effect (spawn, signal, wait), then commits with
``StateModel.apply`` -- one synchronous call, so a cancelled caller can
never leave half a transition behind.

The table is executed by one module-level ``transitions.Machine``, built
once from ``TRANSITIONS``. Models are never bound to it with ``add_model``
(about 7.7 KB and O(N) work per model); the Machine's transitions are read
back once into a (state, trigger) -> target lookup that ``apply`` commits
with (a trigger through the Machine costs 11-15 us, several per cent of a
process cycle). The synchronous ``Machine`` is used on purpose:
``AsyncMachine`` is asyncio-only, swallows outside cancellation
(transitions 0.9.3) and runs callbacks in separate tasks.

What the table leaves to the engine (it is about processes, not states):

- ``kill`` with a signal that does not end the process commits nothing on a
  running container and ``unpause`` on a paused one (Docker resumes it); the
  table's ``kill`` row is the case where the signal ends the process.
- ``remove(force=True)`` on a running or paused container is ``kill`` then
  ``die`` then ``remove``; the table only lets ``remove`` leave ``created``
  and ``stopped``, as Docker does without force.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple, final

from transitions import Machine

from lifecycle._errors import InvalidTransitionError, UnknownTriggerError

__all__ = [
    "HINTS",
    "NO_OPS",
    "PROCESS_TRIGGERS",
    "TRANSITIONS",
    "State",
    "StateModel",
    "Transition",
    "Trigger",
    "allowed_triggers",
    "as_trigger",
]


class State(enum.StrEnum):
    """Where a container is in its lifecycle (Docker's ``State.Status`` without restarting/dead)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"  # Docker calls it "exited"
    DELETED = "deleted"


class Trigger(enum.StrEnum):
    """What moves a container between states; the values are Docker's verbs."""

    CREATE = "create"
    START = "start"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    STOP = "stop"
    KILL = "kill"
    DIE = "die"
    RESTART = "restart"
    REMOVE = "remove"


def _frozen(
    table: dict[State | None, dict[Trigger, State]],
) -> Mapping[State | None, Mapping[Trigger, State]]:
    return MappingProxyType({state: MappingProxyType(row) for state, row in table.items()})


# The transition table: state -> {trigger: new state}. It is DESIGN.md's table
# read row by row (a test compares the two). ``None`` is "(initial)": before
# ``create`` there is no container. Dead ends are written out, as h11 does, so
# "no way out" is a visible decision. Within a row, the order is the order in
# which error messages list what is allowed.
TRANSITIONS: Final[Mapping[State | None, Mapping[Trigger, State]]] = _frozen(
    {
        None: {Trigger.CREATE: State.CREATED},
        State.CREATED: {
            Trigger.START: State.RUNNING,
            Trigger.REMOVE: State.DELETED,
            Trigger.RESTART: State.RUNNING,
        },
        State.RUNNING: {
            Trigger.PAUSE: State.PAUSED,
            Trigger.STOP: State.STOPPED,
            Trigger.KILL: State.STOPPED,
            Trigger.RESTART: State.RUNNING,
            Trigger.DIE: State.STOPPED,
        },
        State.PAUSED: {
            Trigger.UNPAUSE: State.RUNNING,
            Trigger.STOP: State.STOPPED,
            Trigger.KILL: State.STOPPED,
            Trigger.RESTART: State.RUNNING,
            Trigger.DIE: State.STOPPED,
        },
        State.STOPPED: {
            Trigger.START: State.RUNNING,
            Trigger.REMOVE: State.DELETED,
            Trigger.RESTART: State.RUNNING,
        },
        # A deleted container accepts nothing; the engine no longer finds it.
        State.DELETED: {},
    }
)

# Docker answers these with HTTP 304 (moby daemon/start.go "container is already
# running", daemon/stop.go "container is already stopped"): no error, no event.
NO_OPS: Final[Mapping[State, frozenset[Trigger]]] = MappingProxyType(
    {
        State.RUNNING: frozenset({Trigger.START}),
        State.CREATED: frozenset({Trigger.STOP}),
        State.STOPPED: frozenset({Trigger.STOP}),
    }
)

# Triggers the supervised process fires (it exited by itself or was killed from
# outside); a caller never asks for them, so error messages do not offer them.
PROCESS_TRIGGERS: Final[frozenset[Trigger]] = frozenset({Trigger.DIE})

# Docker's hints, worded after moby: daemon/start.go "cannot start a paused
# container, try unpause instead"; daemon/delete.go "stop the container before
# attempting removal or force remove".
HINTS: Final[Mapping[tuple[State, Trigger], str]] = MappingProxyType(
    {
        (State.PAUSED, Trigger.START): "try unpause instead",
        (State.RUNNING, Trigger.REMOVE): "stop the container before removing or force remove",
        (State.PAUSED, Trigger.REMOVE): "stop the container before removing or force remove",
    }
)


class Transition(NamedTuple):
    """One committed move: ``source`` is ``None`` for ``create``."""

    source: State | None
    trigger: Trigger
    dest: State


def as_trigger(value: Trigger | str) -> Trigger:
    """Return ``value`` as a ``Trigger``; raise ``UnknownTriggerError`` for anything else."""
    if isinstance(value, Trigger):
        return value
    try:
        return Trigger(value)
    except ValueError:
        raise UnknownTriggerError(value, [trigger.value for trigger in Trigger]) from None


def allowed_triggers(state: State | None) -> tuple[Trigger, ...]:
    """What a caller may trigger from ``state``, in table order (no-ops and ``die`` left out)."""
    return tuple(trigger for trigger in TRANSITIONS[state] if trigger not in PROCESS_TRIGGERS)


# The model's state lives in a private slot so that only the Machine (and the
# constructor) write it; ``StateModel.state`` is a read-only view.
_MODEL_ATTRIBUTE: Final = "_state"


def _build_machine() -> Machine:
    """One Machine for every container, compiled once from ``TRANSITIONS``."""
    machine = Machine(
        model=None,  # unbound: models are driven through machine.events[...]
        states=State,
        initial=None,
        auto_transitions=False,  # no to_<state>() shortcuts around the table
        ignore_invalid_triggers=False,
        queued=False,
        send_event=False,
        model_attribute=_MODEL_ATTRIBUTE,
        name="lifecycle",
    )
    for source, row in TRANSITIONS.items():
        if source is None:
            continue  # create: a model is born in its target state (StateModel.__init__)
        for trigger, dest in row.items():
            machine.add_transition(trigger.value, source, dest)
    return machine


MACHINE: Final[Machine] = _build_machine()


def _compile(machine: Machine) -> dict[tuple[State, Trigger], State]:
    """(state, trigger) -> target, read back from the Machine once.

    The Machine stays the one executable definition of the table (a test checks
    it against TRANSITIONS); committing through ``machine.events[t].trigger``
    costs 11-15 us per call, several per cent of a full process cycle, so the
    hot path commits with this lookup instead (DESIGN.md, "Known traps").
    """
    return {
        (State[source], Trigger(name)): State[str(transition.dest)]
        for name, event in machine.events.items()
        for source, transitions in event.transitions.items()
        for transition in transitions
    }


_COMPILED: Final = _compile(MACHINE)


@final
class StateModel:
    """The lifecycle state of one container, moved only by the table.

    Creating a model is the ``create`` transition: it starts ``created``.
    ``container_id`` and ``name`` only serve error messages.
    """

    __slots__ = ("_state", "container_id", "last_transition", "name")

    _state: State
    last_transition: Transition
    container_id: str | None
    name: str | None

    def __init__(self, *, container_id: str | None = None, name: str | None = None) -> None:
        self.container_id = container_id
        self.name = name
        created = TRANSITIONS[None][Trigger.CREATE]
        self._state = created
        self.last_transition = Transition(None, Trigger.CREATE, created)

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    def __repr__(self) -> str:
        who = f" {self.name}" if self.name else ""
        return f"<StateModel{who} {self._state.value}>"

    def allowed(self) -> tuple[Trigger, ...]:
        """The triggers a caller may use now (see ``allowed_triggers``)."""
        return allowed_triggers(self._state)

    def check(self, trigger: Trigger | str) -> State | None:
        """Where ``trigger`` would lead from here, without changing anything.

        Returns the target state, or ``None`` for a Docker no-op. Raises
        ``InvalidTransitionError`` (or ``UnknownTriggerError`` for a string that
        names no trigger) when the table has no such row.
        """
        trigger = as_trigger(trigger)
        state = self._state
        dest = TRANSITIONS[state].get(trigger)
        if dest is not None:
            return dest
        if trigger in NO_OPS.get(state, ()):
            return None
        raise InvalidTransitionError(
            state=state,
            trigger=trigger,
            allowed=allowed_triggers(state),
            container_id=self.container_id,
            name=self.name,
            hint=HINTS.get((state, trigger)),
        )

    def apply(self, trigger: Trigger | str) -> Transition | None:
        """Commit ``trigger``: move to its target state and return the transition.

        Returns ``None`` (and changes nothing) for a Docker no-op. Raises as
        ``check`` does, with nothing changed. Synchronous and atomic: there is
        no await point inside, so cancellation cannot interrupt it.
        """
        trigger = as_trigger(trigger)
        dest = self.check(trigger)
        if dest is None:
            return None
        source = self._state
        self._state = _COMPILED[source, trigger]
        transition = Transition(source, trigger, dest)
        self.last_transition = transition
        return transition
