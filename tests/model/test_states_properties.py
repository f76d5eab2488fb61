"""Random trigger sequences either follow the table or raise with nothing changed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from lifecycle import TRANSITIONS, InvalidTransitionError, State, StateModel, Transition, Trigger
from lifecycle.model import NO_OPS

triggers = st.sampled_from(list(Trigger))


@given(st.lists(triggers, max_size=60))
def test_random_sequences_follow_the_table(sequence: list[Trigger]) -> None:
    """Each step goes where the table says, is a no-op, or raises and changes nothing."""
    model = StateModel()
    for trigger in sequence:
        before, last = model.state, model.last_transition
        expected = TRANSITIONS[before].get(trigger)
        if expected is not None:
            assert Transition(before, trigger, expected) == model.apply(trigger)
            assert expected == model.state
        elif trigger in NO_OPS.get(before, ()):
            assert model.apply(trigger) is None
            assert (before, last) == (model.state, model.last_transition)
        else:
            with pytest.raises(InvalidTransitionError):
                model.apply(trigger)
            assert (before, last) == (model.state, model.last_transition)


class ManyModels(RuleBasedStateMachine):
    """Several models driven in any interleaving stay independent of each other."""

    models = Bundle("models")

    def __init__(self) -> None:
        super().__init__()
        self.expected: dict[int, State] = {}
        self.all: list[StateModel] = []

    @rule(target=models)
    def create(self) -> StateModel:
        model = StateModel()
        self.all.append(model)
        self.expected[id(model)] = State.CREATED
        return model

    @rule(model=models, trigger=triggers)
    def fire(self, model: StateModel, trigger: Trigger) -> None:
        state = self.expected[id(model)]
        target = TRANSITIONS[state].get(trigger)
        try:
            model.apply(trigger)
        except InvalidTransitionError:
            assert target is None
            assert trigger not in NO_OPS.get(state, ())
        else:
            if target is not None:
                self.expected[id(model)] = target

    @invariant()
    def every_model_is_where_the_table_put_it(self) -> None:
        for model in self.all:
            assert self.expected[id(model)] == model.state


TestManyModels = ManyModels.TestCase
