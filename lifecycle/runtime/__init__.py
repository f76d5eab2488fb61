"""The runtime layer: the protocols the engine drives containers through, and the drivers.

``RuntimeDriver.spawn(spec) -> RuntimeHandle`` is the whole seam (see
``_driver.py``). The drivers live in subpackages (``native/``: a process
group under a pidfd; an OCI runtime driver goes in ``oci/``) and import
this package, never the reverse; the engine imports this package only.
"""

from __future__ import annotations

from lifecycle.runtime._driver import OutputSink, RuntimeDriver, RuntimeHandle, SpawnFailure
from lifecycle.runtime._multiplex import Multiplexer
from lifecycle.runtime._probe import run_probe
from lifecycle.runtime._registry import (
    BUILTIN_DRIVERS,
    IMAGE_ONLY_DRIVERS,
    check_driver_name,
    create_driver,
)

__all__ = [
    "BUILTIN_DRIVERS",
    "IMAGE_ONLY_DRIVERS",
    "Multiplexer",
    "OutputSink",
    "RuntimeDriver",
    "RuntimeHandle",
    "SpawnFailure",
    "check_driver_name",
    "create_driver",
    "run_probe",
]
