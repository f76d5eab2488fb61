"""Container root filesystems: set-up + tear-down per container, and disk used by 100 of them.

Run (as root):  .venv/bin/python benchmarks/rootfs.py [--quick]

1. per container: ``prepare`` + ``remove`` with overlayfs and with vfs, against a shell
   baseline doing the same with no Python in between (``mkdir`` of upper/work/merged,
   ``mount -t overlay``, ``umount``, ``rm -rf``), alternating, medians of N;
2. disk used by 100 containers of one image that each wrote one small file: overlayfs
   keeps the image once plus 100 small uppers; vfs keeps 100 copies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle import ImageStore
from lifecycle.rootfs import choose_snapshotter
from tests.images.tools import busybox_rootfs


def _disk_usage(path: Path) -> int:
    """Bytes of disk (du: hard links and shared layers counted once)."""
    output = subprocess.run(
        # -x: not into the overlay mounts (they show the image again, not disk used)
        ["du", "-sx", "--block-size=1", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(output.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/rootfs.py needs root (overlay mounts)")
    rounds = 5 if options.quick else 50
    fleet = 10 if options.quick else 100
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        store = ImageStore(work / "store")
        image = anyio.run(
            lambda: store.import_rootfs(busybox_rootfs(work / "rootfs"), "busybox", cmd=["sh"])
        )
        overlay = choose_snapshotter(work / "snap", store, "overlayfs")
        vfs = choose_snapshotter(work / "snap", store, "vfs")
        overlay.remove(overlay.prepare("warm", image).parent.name)  # layers unpacked once
        vfs.remove(vfs.prepare("warm", image).parent.name)
        lower = next((work / "snap" / "overlayfs" / "layers").iterdir()) / "fs"
        baseline = (
            "set -e; d=$1; mkdir -p $d/upper $d/work $d/merged; "
            "mount -t overlay overlay -o lowerdir=$2,upperdir=$d/upper,workdir=$d/work $d/merged; "
            "umount $d/merged; rm -rf $d"
        )
        timings: dict[str, list[float]] = {"overlayfs": [], "vfs": [], "shell": []}
        for number in range(rounds):
            for name, snapshotter in (("overlayfs", overlay), ("vfs", vfs)):
                started = time.perf_counter()
                snapshotter.prepare(f"c{number}", image)
                snapshotter.remove(f"c{number}")
                timings[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(
                ["sh", "-c", baseline, "sh", str(work / f"b{number}"), str(lower)], check=True
            )
            timings["shell"].append(time.perf_counter() - started)
        shell = statistics.median(timings["shell"])
        print(f"rootfs benchmarks: a {image.size >> 20} MB busybox image, {rounds} rounds")
        for name in ("overlayfs", "vfs", "shell"):
            median = statistics.median(timings[name])
            print(
                f"  set-up + tear-down, {name:<9} {median * 1000:7.2f} ms "
                f"({min(timings[name]) * 1000:.2f}-{max(timings[name]) * 1000:.2f})"
                f"   {median / shell:4.2f}x the shell baseline"
            )
        for name, snapshotter in (("overlayfs", overlay), ("vfs", vfs)):
            keys = [f"fleet{number}" for number in range(fleet)]
            for key in keys:
                (snapshotter.prepare(key, image) / "written").write_bytes(b"x" * 100)
            used = _disk_usage(work / "snap" / name)
            for key in keys:
                snapshotter.remove(key)
            print(f"  disk for {fleet} containers, {name:<9} {used / 1e6:8.2f} MB")
        shutil.rmtree(work / "snap")


if __name__ == "__main__":
    main()
