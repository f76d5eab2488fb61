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

__all__ = ["Registry", "busybox_rootfs", "require", "run", "umoci_image"]

PACKAGES: Final = {
    "umoci": "umoci",
    "skopeo": "skopeo",
    "busybox": "busybox-static",
    "docker-registry": "docker-registry",
    "runc": "runc",
    # The Go client, no daemon (/usr/local/bin/docker on this kind of machine).
    "docker": "docker-ce-cli",
}


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


def busybox_system_rootfs(directory: Path) -> Path:
    """A busybox rootfs like the busybox image's: every applet linked in /bin, and an
    /etc/passwd and /etc/group with root and nobody (for containers under an OCI runtime)."""
    busybox_rootfs(directory)
    applets = run(directory / "bin" / "busybox", "--list").split()
    for applet in applets:
        link = directory / "bin" / applet
        if not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")
    etc = directory / "etc"
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
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


class Registry:
    """A real CNCF distribution registry (Debian's docker-registry) on 127.0.0.1, for a test."""

    def __init__(self, directory: Path, *, users: dict[str, str] | None = None) -> None:
        import socket  # noqa: PLC0415

        binary = require("docker-registry")
        directory.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.log = directory / "registry.log"
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(directory / "data")}},
            "http": {"addr": self.address},
        }
        if users:
            htpasswd = directory / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{_bcrypt(p)}\n" for u, p in users.items()))
            config["auth"] = {"htpasswd": {"realm": "test", "path": str(htpasswd)}}
        (directory / "config.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [binary, "serve", str(directory / "config.yml")],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        import time  # noqa: PLC0415

        import httpx  # noqa: PLC0415

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://{self.address}/v2/", timeout=1)
                return
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    raise AssertionError(f"registry exited: {self.log.read_text()}") from None
                time.sleep(0.02)  # polling a condition with a deadline
        raise AssertionError("the registry did not answer within 15 s")

    def requests(self) -> list[str]:
        """The request lines of its access log so far ("POST /v2/... 201")."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if '"' in line and "HTTP/1.1" in line:
                request = line.split('"')[1]
                status = line.split('"')[2].split()[0]
                found.append(f"{request.removesuffix(' HTTP/1.1')} {status}")
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


def _bcrypt(password: str) -> str:
    """A bcrypt hash for htpasswd (distribution accepts only bcrypt), from libxcrypt."""
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: PLC0415 -- deprecated, but the one bcrypt in the standard library

        # bcrypt is what distribution requires, and only a test password is hashed.
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324
