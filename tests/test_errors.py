"""Every error names what went wrong, in lowercase, Docker's way."""

from __future__ import annotations

import pytest

from lifecycle import (
    ContainerNotFoundError,
    GraphvizNotFoundError,
    InvalidTransitionError,
    LifecycleError,
    NameConflictError,
    RenderError,
    SpawnError,
    UnknownTriggerError,
)

CONTAINER_ID = "0123456789ab" + "c" * 52


@pytest.mark.parametrize(
    "error_type",
    [
        InvalidTransitionError,
        UnknownTriggerError,
        ContainerNotFoundError,
        NameConflictError,
        SpawnError,
        RenderError,
        GraphvizNotFoundError,
    ],
)
def test_every_error_is_a_lifecycle_error(error_type: type[Exception]) -> None:
    """One except clause catches everything lifecycle raises on purpose."""
    assert issubclass(error_type, LifecycleError)


def test_container_not_found_names_the_reference() -> None:
    """Docker's "no such container" with the reference given."""
    error = ContainerNotFoundError("web")
    assert "web" == error.reference
    assert "no such container: web" == str(error)
    assert "no such container: 3f (ambiguous: matches 2 containers)" == str(
        ContainerNotFoundError("3f", reason="ambiguous: matches 2 containers")
    )


def test_name_conflict_names_name_and_holder() -> None:
    """The message names the taken name and the short id of the container holding it."""
    error = NameConflictError("web", container_id=CONTAINER_ID)
    assert ("web", CONTAINER_ID) == (error.name, error.container_id)
    assert (
        "the container name web is already in use by container 0123456789ab; "
        "remove that container to reuse the name"
    ) == str(error)


@pytest.mark.parametrize(
    ("exit_code", "reason"), [(127, "executable file not found"), (126, "permission denied")]
)
def test_spawn_error_carries_the_shell_exit_code(exit_code: int, reason: str) -> None:
    """SpawnError carries 127/126 and the command, and names the container."""
    error = SpawnError(
        reason, exit_code=exit_code, command=["nope", "-x"], container_id=CONTAINER_ID, name="web"
    )
    assert exit_code == error.exit_code
    assert ("nope", "-x") == error.command
    assert f"cannot start container web (0123456789ab): {reason} (exit code {exit_code})" == str(
        error
    )


def test_invalid_transition_without_allowed_says_nothing() -> None:
    """A dead end says so instead of printing an empty list."""
    error = InvalidTransitionError(state="deleted", trigger="start", allowed=(), name="web")
    assert "cannot start container web: container is deleted (allowed: nothing)" == str(error)


def test_graphviz_not_found_says_how_to_install() -> None:
    """The error names the format and how to get Graphviz, or to use svg."""
    message = str(GraphvizNotFoundError("png"))
    assert message.startswith(
        "png output needs the graphviz 'dot' binary".replace("graphviz", "Graphviz")
    )
    assert "apt-get install graphviz" in message
    assert "svg" in message
