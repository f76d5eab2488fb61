"""Tools no one here wrote, as the test oracle: umoci, skopeo, busybox (Debian packages).

Outside CI a missing tool skips the tests that need it, with a reason naming
the package to install; CI sets LIFECYCLE_REQUIRE_TOOLS=1 (``.ci/run``), which
turns those skips into failures, so a green CI run has really used them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest

__all__ = ["busybox_rootfs", "require", "run", "umoci_image"]

PACKAGES: Final = {"umoci": "umoci", "skopeo": "skopeo", "busybox": "busybox-static"}


def require(tool: str) -> str:
    """The tool's path; skip (or, in CI, fail) when it is not installed."""
    found = shutil.which(tool)
    if found is not None:
        return found
    reason = f"{tool} is not installed (apt-get install {PACKAGES.get(tool, tool)})"
    if os.environ.get("LIFECYCLE_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason}; CI requires it")
    pytest.skip(reason)


def run(*command: str | Path) -> str:
    """Run a tool; its stdout (a failure shows its stderr)."""
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120, check=False
    )
    assert 0 == result.returncode, f"{command}: {result.stderr}"
    return result.stdout


def busybox_rootfs(directory: Path) -> Path:
    """A 2 MB rootfs: Debian's static busybox and a few applet links (absolute and relative)."""
    busybox = require("busybox")
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(busybox, bin_dir / "busybox")
    (bin_dir / "sh").symlink_to("busybox")
    (bin_dir / "ls").symlink_to("/bin/busybox")
    (directory / "etc").mkdir()
    (directory / "etc" / "hostname").write_text("box\n")
    return directory


def umoci_image(
    layout: Path, tag: str, rootfs: Path, *, cmd: str = "sh", base: str | None = None
) -> None:
    """An image made by umoci in an OCI layout (created if needed): ``rootfs`` as a new layer
    on ``base`` (a tag of the layout) or on nothing.

    Through ``unpack``/``repack``: umoci 0.4.7's ``insert`` writes layers without the tar's
    final padding and end-of-archive blocks (GNU tar refuses them too), which a store that
    checks its input rightly refuses.
    """
    require("umoci")
    if not (layout / "index.json").exists():
        run("umoci", "init", "--layout", layout)
    if base is None:
        run("umoci", "new", "--image", f"{layout}:{tag}")
    else:
        run("umoci", "tag", "--image", f"{layout}:{base}", tag)
    bundle = layout.parent / f".bundle-{layout.name}-{tag}"
    run("umoci", "unpack", "--image", f"{layout}:{tag}", bundle)
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    run("umoci", "repack", "--image", f"{layout}:{tag}", bundle)
    shutil.rmtree(bundle)
    run("umoci", "config", "--image", f"{layout}:{tag}", f"--config.cmd={cmd}")


def layout_document(layout: Path, digest: str) -> dict[str, Any]:
    """A JSON blob of an OCI layout."""
    document: dict[str, Any] = json.loads(
        (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    )
    return document


def layout_manifest(layout: Path, tag: str) -> dict[str, Any]:
    """The manifest the layout's index names ``tag``."""
    index = json.loads((layout / "index.json").read_bytes())
    for entry in index["manifests"]:
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return layout_document(layout, entry["digest"])
    raise AssertionError(f"no {tag} in {layout}")
