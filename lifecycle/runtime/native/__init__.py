"""The native driver: each container is a process group of this process, under a pidfd.

Linux only (pidfds: 5.3+). Imports the runtime protocols, the model and the
base modules; nothing above it imports this package except the registry
(by name, on first use) and the command line's demo.
"""

from __future__ import annotations

from lifecycle.runtime.native._driver import NativeDriver

__all__ = ["NativeDriver"]
