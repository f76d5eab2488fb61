"""The OCI runtime driver: each container a real PID 1 under runc or crun, in namespaces.

Needs root, the runtime binary and a cgroup v1 freezer hierarchy (``missing_requirement``
says which is missing). Imports the runtime protocols, containment, the model and the base
modules; nothing imports this package but the registry, by name.
"""

from __future__ import annotations

from lifecycle.runtime.oci._driver import CrunDriver, OciDriver, RuncDriver, missing_requirement

__all__ = ["CrunDriver", "OciDriver", "RuncDriver", "missing_requirement"]
