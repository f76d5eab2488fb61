"""Drive the pure state model by hand: legal moves, Docker's no-ops, and a refusal.

Run: .venv/bin/python examples/state_model.py
"""

from __future__ import annotations

from lifecycle import InvalidTransitionError, StateModel, Trigger


def main() -> None:
    model = StateModel(name="web")
    print(f"new model: {model.state}")

    for trigger in (Trigger.START, Trigger.PAUSE, Trigger.UNPAUSE, Trigger.STOP):
        transition = model.apply(trigger)
        print(f"{trigger:>8}: {transition.source} -> {transition.dest}" if transition else "no-op")

    # Docker's no-op: stopping a stopped container is not an error and changes nothing.
    if model.apply(Trigger.STOP) is None:
        print(f"    stop: no-op, still {model.state}")

    try:
        model.apply(Trigger.PAUSE)
    except InvalidTransitionError as error:
        print(f"refused: {error}")
        allowed = ", ".join(error.allowed)
        print(f"         state={error.state} trigger={error.trigger} allowed={allowed}")

    model.apply("remove")
    print(f"  remove: now {model.state}; it accepts nothing: {model.allowed() == ()}")


if __name__ == "__main__":
    main()
