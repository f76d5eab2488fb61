"""What every route of the API shares: the engine, its store, the Docker-only records.

The engine has no word for the image name as the client wrote it,
``AutoRemove`` or the entrypoint/cmd split; the API keeps them here, by
container id, from create until the container's ``destroy`` event has been
served. Labels and the creation time are the engine's (journaled, so they
survive a restart of the server; the fields here do not).
"""

from __future__ import annotations

import dataclasses
from typing import final

from anyio.abc import TaskGroup

from lifecycle.api._formats import ContainerRecord
from lifecycle.api._http import HttpError
from lifecycle.engine import Container, Engine
from lifecycle.images import ImageStore

__all__ = ["ApiState"]


@final
@dataclasses.dataclass(slots=True)
class ApiState:
    """The engine behind the API and what the API adds to it."""

    engine: Engine
    store: ImageStore | None
    task_group: TaskGroup
    # The driver a container runs on unless its HostConfig.Runtime says otherwise.
    default_runtime: str = "native"
    # Registries spoken to over plain HTTP (Docker's --insecure-registry), besides loopback.
    insecure_registries: frozenset[str] = frozenset()
    records: dict[str, ContainerRecord] = dataclasses.field(default_factory=dict)

    def container(self, reference: str) -> Container:
        """The container ``reference`` names (id, name, unique prefix; a name may carry
        Docker's leading ``/``). ``ContainerNotFoundError`` (the router's 404) otherwise."""
        return self.engine.get(reference.removeprefix("/"))

    def record(self, container: Container) -> ContainerRecord:
        """The API's record of ``container`` (one made for a container the API did not create)."""
        record = self.records.get(container.id)
        if record is None:
            image = container.image
            command = container.command
            record = ContainerRecord(
                image=image.references[0].familiar if image and image.references else "",
                created=container.created_at,
                labels=container.labels,
                auto_remove=False,
                entrypoint=None,
                cmd=command,
                env=tuple(f"{key}={value}" for key, value in container.spec.env.items()),
                network_mode=container.spec.network or "host",
            )
            self.records[container.id] = record
        return record

    def require_store(self) -> ImageStore:
        if self.store is None:
            raise HttpError(501, "this engine has no image store (lifecycle serve --root DIR)")
        return self.store
