"""The exceptions `lifecycle` raises.

This is a leaf module: it imports nothing from the package but the id
helper (``_stringid``, itself a leaf), so every layer can raise these
without an import loop (structlog's ``exceptions.py`` does the same).
States and triggers arrive as ``str`` values; ``State`` and ``Trigger``
are ``StrEnum``s, so the attributes hold the enum members.

Our exception tree::

    LifecycleError                      base of everything lifecycle raises
    ├── InvalidTransitionError          the trigger is not allowed from the current state
    ├── UnknownTriggerError             a string that names no trigger (also a ValueError)
    ├── ContainerNotFoundError          no live container matches a reference
    ├── NameConflictError               the name is in use by a live container
    ├── SpawnError                      the supervised process could not be started
    ├── PauseTimeoutError               the process group did not stop in time (it was resumed)
    ├── EngineClosedError               the engine has shut down; it accepts nothing more
    ├── InvalidArgumentError            bad input, refused with nothing changed (a ValueError)
    │   ├── InvalidNameError            a container name that breaks Docker's naming rule
    │   ├── InvalidSignalError          a signal name or number this system does not have
    │   └── InvalidReferenceError       an image reference distribution/reference refuses
    ├── ImageNotFoundError              no image in the store matches a reference or id
    ├── ImageConflictError              the image cannot be removed that way (Docker's 409)
    ├── ImageContentError               a blob is missing, corrupt or mislabelled; nothing added
    │   └── UnsafeLayerError            a layer entry that would escape or bomb; nothing added
    ├── RegistryError                   a registry refused, failed or could not be reached
    └── RenderError                     Graphviz could not render a graph
        └── GraphvizNotFoundError       the format needs the system `dot` binary; none on PATH

Messages follow Docker's shape, lowercase, and name everything a reader
needs: the container (name and short id), its state, the trigger, and what
is allowed instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from lifecycle._stringid import truncate_id

__all__ = [
    "ContainerNotFoundError",
    "EngineClosedError",
    "GraphvizNotFoundError",
    "ImageConflictError",
    "ImageContentError",
    "ImageNotFoundError",
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidReferenceError",
    "InvalidSignalError",
    "InvalidTransitionError",
    "LifecycleError",
    "NameConflictError",
    "PauseTimeoutError",
    "RegistryError",
    "RenderError",
    "SpawnError",
    "UnknownTriggerError",
    "UnsafeLayerError",
]


def _describe_container(container_id: str | None, name: str | None) -> str:
    """``container web (3f2a9c1d0b7e)``, or as much of it as is known."""
    words = ["container"]
    if name:
        words.append(name)
    if container_id:
        words.append(f"({truncate_id(container_id)})")
    return " ".join(words)


class LifecycleError(Exception):
    """Base class of every error `lifecycle` raises on purpose."""


class UnknownTriggerError(LifecycleError, ValueError):
    """A string that names no trigger was given where a trigger was expected."""

    def __init__(self, value: object, known: Iterable[str]) -> None:
        self.value = value
        self.known = tuple(known)
        super().__init__(f"unknown trigger {value!r} (expected one of: {', '.join(self.known)})")


class InvalidTransitionError(LifecycleError):
    """The trigger is not in the transition table for the container's state.

    Nothing was changed: no signal was sent and no event was published.
    """

    def __init__(
        self,
        *,
        state: str,
        trigger: str,
        allowed: Iterable[str],
        container_id: str | None = None,
        name: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.state = state
        self.trigger = trigger
        self.allowed = tuple(allowed)
        self.container_id = container_id
        self.name = name
        self.hint = hint
        allowed_text = ", ".join(self.allowed) if self.allowed else "nothing"
        message = (
            f"cannot {trigger} {_describe_container(container_id, name)}: "
            f"container is {state} (allowed: {allowed_text})"
        )
        if hint:
            message = f"{message}; {hint}"
        super().__init__(message)


class ContainerNotFoundError(LifecycleError):
    """No live container matches the reference (full id, name or unique id prefix)."""

    def __init__(self, reference: str, *, reason: str | None = None) -> None:
        self.reference = reference
        self.reason = reason
        # Docker: "No such container: web".
        message = f"no such container: {reference}"
        if reason:
            message = f"{message} ({reason})"
        super().__init__(message)


class NameConflictError(LifecycleError):
    """The name is already used by a live (not deleted) container."""

    def __init__(self, name: str, *, container_id: str) -> None:
        self.name = name
        self.container_id = container_id
        # Docker: 'Conflict. The container name "/web" is already in use by container "3f2a…".
        # You have to remove (or rename) that container to be able to reuse that name.'
        super().__init__(
            f"the container name {name} is already in use by container "
            f"{truncate_id(container_id)}; remove that container to reuse the name"
        )


class SpawnError(LifecycleError):
    """The supervised process could not be started.

    ``exit_code`` follows the shell's convention, as Docker does: 127 when the
    executable was not found, 126 when it was found but could not be executed.
    The container keeps the state it had.
    """

    def __init__(
        self,
        reason: str,
        *,
        exit_code: int,
        command: Iterable[str] = (),
        container_id: str | None = None,
        name: str | None = None,
    ) -> None:
        self.reason = reason
        self.exit_code = exit_code
        self.command = tuple(command)
        self.container_id = container_id
        self.name = name
        subject = _describe_container(container_id, name)
        super().__init__(f"cannot start {subject}: {reason} (exit code {exit_code})")


class RenderError(LifecycleError):
    """Graphviz could not render the graph (the message carries Graphviz's reason)."""


class GraphvizNotFoundError(RenderError):
    """The requested format needs the system ``dot`` binary, and it is not on ``PATH``."""

    def __init__(self, output_format: str) -> None:
        self.format = output_format
        super().__init__(
            f"{output_format} output needs the Graphviz 'dot' binary, which is not on PATH; "
            "install Graphviz (Debian/Ubuntu: apt-get install graphviz; Fedora: dnf install "
            "graphviz; macOS: brew install graphviz), or ask for svg, which renders in-process"
        )


class PauseTimeoutError(LifecycleError):
    """The process group did not reach the stopped state in time; it was resumed (SIGCONT)."""

    def __init__(
        self, *, timeout: float, container_id: str | None = None, name: str | None = None
    ) -> None:
        self.timeout = timeout
        self.container_id = container_id
        self.name = name
        super().__init__(
            f"cannot pause {_describe_container(container_id, name)}: its processes did not "
            f"stop within {timeout:g}s (uninterruptible sleep?); it was resumed and is running"
        )


class EngineClosedError(LifecycleError):
    """The engine has shut down (or was never entered); it accepts no more operations."""


class InvalidArgumentError(LifecycleError, ValueError):
    """Bad input, refused before anything changed; the message names the argument and the rule."""


class InvalidNameError(InvalidArgumentError):
    """A container name that breaks the rule ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``."""

    def __init__(self, name: object, pattern: str) -> None:
        self.name = name
        # Docker: "Invalid container name (web!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed".
        super().__init__(f"invalid container name {name!r}: it must match {pattern}")


class InvalidSignalError(InvalidArgumentError):
    """A signal name or number this system does not have (or one that cannot be used here)."""

    def __init__(self, value: object, reason: str = "no such signal") -> None:
        self.value = value
        super().__init__(f"invalid signal {value!r}: {reason}")


class InvalidReferenceError(InvalidArgumentError):
    """An image reference that distribution/reference's grammar refuses."""

    def __init__(self, reference: str, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        # distribution's messages ("invalid reference format", "repository name must be
        # lowercase", ...), then what was given.
        super().__init__(f"{reason} (reference {reference!r})")


class ImageNotFoundError(LifecycleError):
    """No image in the store matches the reference, id or id prefix."""

    def __init__(self, reference: str, *, reason: str | None = None) -> None:
        self.reference = reference
        self.reason = reason
        # Docker: "No such image: busybox:latest".
        message = f"no such image: {reference}"
        super().__init__(f"{message} ({reason})" if reason else message)


class ImageConflictError(LifecycleError):
    """The image cannot be removed as asked (Docker answers 409); nothing was removed."""


class ImageContentError(LifecycleError):
    """A blob is missing, truncated, corrupt or not what its descriptor says.

    ``blob`` names it (a digest or a path inside the source). Nothing was added to the store.
    """

    def __init__(self, blob: str, problem: str) -> None:
        self.blob = blob
        self.problem = problem
        super().__init__(f"blob {blob}: {problem}; nothing was added to the store")


class UnsafeLayerError(ImageContentError):
    """A layer entry that would reach outside the layer (or the store), or a tar bomb."""

    def __init__(self, blob: str, entry: str, problem: str) -> None:
        self.entry = entry
        super().__init__(blob, f"entry {entry!r}: {problem}")


class RegistryError(LifecycleError):
    """A registry refused a request, failed, or could not be reached."""

    def __init__(self, registry: str, problem: str) -> None:
        self.registry = registry
        self.problem = problem
        super().__init__(f"registry {registry}: {problem}")
