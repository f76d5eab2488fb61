"""Which drivers exist, by name, and how to make one.

The built-in drivers are named here as ``module:class`` and imported on
first use, the way containerd resolves a runtime name
(``io.containerd.runc.v2``) to its shim: the protocol layer lists its
drivers without importing them (each driver imports this package), and an
engine that never runs a container on a driver never loads it.
"""

from __future__ import annotations

import importlib
from typing import Final

from lifecycle._errors import InvalidArgumentError
from lifecycle.runtime._driver import RuntimeDriver

__all__ = ["BUILTIN_DRIVERS", "IMAGE_ONLY_DRIVERS", "check_driver_name", "create_driver"]

BUILTIN_DRIVERS: Final = {
    "native": "lifecycle.runtime.native:NativeDriver",
    "runc": "lifecycle.runtime.oci:RuncDriver",
    "crun": "lifecycle.runtime.oci:CrunDriver",
}
# Drivers that run only containers made from an image (an OCI bundle needs a root).
IMAGE_ONLY_DRIVERS: Final = frozenset({"runc", "crun"})


def check_driver_name(name: object, known: tuple[str, ...]) -> str:
    """``name`` if it is one of ``known``; ``InvalidArgumentError`` naming them otherwise."""
    if not isinstance(name, str) or name not in known:
        raise InvalidArgumentError(
            f"unknown runtime {name!r} (available: {', '.join(sorted(known))})"
        )
    return name


def create_driver(name: str) -> RuntimeDriver:
    """A new instance of the built-in driver ``name`` (``InvalidArgumentError`` if none)."""
    check_driver_name(name, tuple(BUILTIN_DRIVERS))
    module_name, _, class_name = BUILTIN_DRIVERS[name].partition(":")
    driver: RuntimeDriver = getattr(importlib.import_module(module_name), class_name)()
    return driver
