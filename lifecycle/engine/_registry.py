"""Finding containers: by full id, by name, or by a unique id prefix (Docker's order)."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar, final

from lifecycle._errors import ContainerNotFoundError, NameConflictError

__all__ = ["ContainerRegistry"]


class _Named(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=_Named)


@final
class ContainerRegistry(Generic[T]):
    """The live (not deleted) containers of one engine, oldest first."""

    __slots__ = ("_by_id", "_by_name")

    def __init__(self) -> None:
        self._by_id: dict[str, T] = {}
        self._by_name: dict[str, T] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[T]:
        """Every live container, oldest first (a copy: safe to change the registry meanwhile)."""
        return list(self._by_id.values())

    def has_id(self, container_id: str) -> bool:
        return container_id in self._by_id

    def name_taken(self, name: str) -> bool:
        return name in self._by_name

    def check_name_free(self, name: str) -> None:
        """``NameConflictError`` naming the holder if a live container has ``name``."""
        holder = self._by_name.get(name)
        if holder is not None:
            raise NameConflictError(name, container_id=holder.id)

    def add(self, container: T) -> None:
        self._by_id[container.id] = container
        self._by_name[container.name] = container

    def remove(self, container_id: str) -> None:
        """Forget a container (its name is free again). Idempotent."""
        container = self._by_id.pop(container_id, None)
        if container is not None and self._by_name.get(container.name) is container:
            del self._by_name[container.name]

    def get(self, reference: str) -> T:
        """Find a live container by full id, name, or unique id prefix (Docker's order).

        Raises ``ContainerNotFoundError`` saying whether nothing matched or
        the prefix matched several containers.
        """
        if not isinstance(reference, str) or not reference:
            raise ContainerNotFoundError(repr(reference), reason="expected an id, name or prefix")
        found = self._by_id.get(reference) or self._by_name.get(reference)
        if found is not None:
            return found
        matches = [c for cid, c in self._by_id.items() if cid.startswith(reference)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ContainerNotFoundError(
                reference, reason=f"ambiguous: the id prefix matches {len(matches)} containers"
            )
        raise ContainerNotFoundError(reference)
