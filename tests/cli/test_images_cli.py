"""`lifecycle images` and `lifecycle image ...`: docker's output shapes and exit codes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..helpers import run_cli
from ..images.tools import busybox_rootfs


def cli(tmp_path: Path, *arguments: str) -> tuple[int, str, str]:
    environment = dict(os.environ, LIFECYCLE_ROOT=str(tmp_path / "store"))
    result = run_cli(*arguments, cwd=tmp_path, env=environment)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_import_list_tag_save_load_inspect_and_remove(tmp_path: Path) -> None:
    """A whole round: the listing has docker's columns and one row per name; rm says what it
    untagged and deleted; a missing image exits 1 naming it."""
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    code, out, err = cli(tmp_path, "image", "import", str(rootfs), "me/tool:1.0", "--cmd", '["sh"]')
    assert (0, "") == (code, err)
    image_id = out.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    assert 0 == cli(tmp_path, "image", "tag", "me/tool:1.0", "busybox")[0]
    code, out, _ = cli(tmp_path, "images")
    lines = out.splitlines()
    assert re.fullmatch(r"REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE", lines[0])
    rows = sorted(line.split()[:3] for line in lines[1:])
    assert [["busybox", "latest", image_id[7:19]], ["me/tool", "1.0", image_id[7:19]]] == rows
    assert re.search(r"(seconds|second) ago\s+2(\.\d+)?MB$", lines[1])
    saved = tmp_path / "saved.tar"
    assert 0 == cli(tmp_path, "image", "save", "-o", str(saved), "busybox")[0]
    code, out, _ = cli(tmp_path, "image", "rm", "-f", image_id[7:19])
    assert ["Untagged: busybox:latest", "Untagged: me/tool:1.0", f"Deleted: {image_id}"] == (
        out.splitlines()
    )
    code, out, _ = cli(tmp_path, "image", "load", "-i", str(saved))
    assert (0, "Loaded image: busybox:latest\n") == (code, out)
    code, out, _ = cli(tmp_path, "image", "inspect", "busybox")
    [document] = json.loads(out)
    assert (image_id, ["sh"]) == (document["Id"], document["Config"]["Cmd"])
    code, out, err = cli(tmp_path, "image", "rm", "nope:1")
    assert (1, "") == (code, out)
    assert "no such image: nope:1" in err
    code, _, err = cli(tmp_path, "image", "tag", "busybox", "Bad/Name")
    assert 1 == code
    assert "must be lowercase" in err


def test_push_and_pull_through_a_registry(tmp_path: Path) -> None:
    """`lifecycle push` then `lifecycle pull` into another store, against a real registry."""
    from ..images.tools import Registry  # noqa: PLC0415

    registry = Registry(tmp_path / "registry")
    try:
        rootfs = busybox_rootfs(tmp_path / "rootfs")
        assert 0 == cli(tmp_path, "image", "import", str(rootfs), "me/tool:1.0")[0]
        target = f"{registry.address}/me/tool:1.0"
        code, out, err = cli(tmp_path, "push", "--insecure", "me/tool:1.0", target)
        assert (0, "") == (code, err)
        digest = out.split("digest: ")[1].strip()
        other = tmp_path / "other"
        other.mkdir()
        code, out, err = cli(other, "pull", "--insecure", target)
        assert (0, "") == (code, err)
        assert f"Digest: {digest}" == out.splitlines()[0]
        code, out, err = cli(other, "pull", "--insecure", f"{registry.address}/missing:1")
        assert 1 == code
        assert "no such image" in err
    finally:
        registry.stop()


def test_info_reports_the_store_and_the_snapshotter(tmp_path: Path) -> None:
    """`lifecycle info`: the root, the image count and which snapshotter containers get."""
    code, out, err = cli(tmp_path, "info")
    assert (0, "") == (code, err)
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert str(tmp_path / "store") == lines["Root"]
    assert lines["Images"].startswith("0 ")
    assert lines["Snapshotter"] in {"overlayfs", "vfs"}
    assert "native" in lines["Runtimes"]
