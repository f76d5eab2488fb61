"""Image store benchmarks: ratios against skopeo and hashlib, both sides in the same run.

Run:  .venv/bin/python benchmarks/images.py            (a 200 MB, 4-layer image; about a minute)
      .venv/bin/python benchmarks/images.py --quick    (8 MB: the test suite checks it runs)

1. import of an OCI layout   vs  ``skopeo copy oci:A oci:B`` of the same image
2. pull from a local registry vs ``skopeo copy docker://... oci:...``
3. ingest of one blob (hash + write + fsync) vs ``hashlib.sha256`` over the same bytes in memory

What each side does differs, and the ratio should be read with it: skopeo
copies layer blobs verbatim and checks their digests; the store also
decompresses every layer, hashes it again (the DiffID) and walks every tar
entry as hostile input. Rounds alternate between the two sides; medians
with min-max are printed.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle import ImageStore
from lifecycle.images._layout import Layout
from tests.images.tools import Registry


def _layer(size: int, seed: int) -> bytes:
    """A gzip layer of ``size`` bytes of files: half random (incompressible), half text."""
    rng = __import__("random").Random(seed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        written, number = 0, 0
        while written < size:
            chunk = min(4 << 20, size - written)
            half = chunk // 2
            data = rng.randbytes(half) + (b"lifecycle benchmark line\n" * (half // 25 + 1))[:half]
            info = tarfile.TarInfo(f"data/{seed}/file{number}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
            written += len(data)
            number += 1
    return gzip.compress(buffer.getvalue(), compresslevel=1)


def _put(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build_layout(layout: Path, total: int, layers: int = 4) -> None:
    """An OCI layout with one image (bench:1) of ``layers`` gzip layers, ``total`` bytes."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors, diff_ids = [], []
    for seed in range(layers):
        blob = _layer(total // layers, seed)
        descriptors.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_put(layout, blob)}
        )
        diff_ids.append(f"sha256:{hashlib.sha256(gzip.decompress(blob)).hexdigest()}")
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **_put(layout, config),
            },
            "layers": descriptors,
        }
    ).encode()
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_put(layout, manifest),
        "annotations": {"org.opencontainers.image.ref.name": "bench:1"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def _timed_sync(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _timed_async(function: Callable[[], Awaitable[object]]) -> float:
    async def run() -> float:
        started = time.perf_counter()
        await function()
        return time.perf_counter() - started

    return anyio.run(run)


def _row(label: str, ours: list[float], theirs: list[float], size: int, peer: str) -> None:
    mine, other = statistics.median(ours), statistics.median(theirs)
    rate = size / mine / 1e6
    spread = f"({min(ours):.3f}-{max(ours):.3f})"
    their_spread = f"({min(theirs):.3f}-{max(theirs):.3f})"
    print(
        f"  {label:<38} store {mine:6.3f}s {spread} {rate:7.1f} MB/s"
        f"   {peer} {other:6.3f}s {their_spread}   {other / mine:4.2f}x {peer}"
    )


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    total = 8 << 20 if options.quick else 200 << 20
    rounds = 1 if options.quick else 3
    skopeo = shutil.which("skopeo")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as scratch:
        work = Path(scratch)
        source = work / "source"
        build_layout(source, total)
        blob_bytes = sum(p.stat().st_size for p in (source / "blobs" / "sha256").iterdir())
        print(
            f"image store benchmarks: one image, 4 gzip layers, {total >> 20} MB uncompressed,"
            f" {blob_bytes >> 20} MB of blobs; {rounds} rounds"
        )

        ours, theirs = [], []
        for number in range(rounds):
            target = work / f"store{number}"
            ours.append(_timed_async(lambda t=target: ImageStore(t).import_oci_layout(source)))
            if skopeo:
                copy = work / f"skopeo{number}"
                command = [skopeo, "copy", "-q", f"oci:{source}:bench:1", f"oci:{copy}:bench:1"]
                theirs.append(_timed_sync(functools.partial(_run, command)))
        _row(
            "import OCI layout", ours, theirs or ours, blob_bytes, "skopeo" if skopeo else "(none)"
        )

        if shutil.which("docker-registry") and skopeo:
            registry = Registry(work / "registry")
            try:
                remote = f"{registry.address}/bench/image:1"
                subprocess.run(
                    [
                        skopeo,
                        "copy",
                        "-q",
                        "--dest-tls-verify=false",
                        f"oci:{source}:bench:1",
                        f"docker://{remote}",
                    ],
                    check=True,
                )
                ours, theirs = [], []
                for number in range(rounds):
                    target = work / f"pulled{number}"
                    pull = functools.partial(ImageStore(target).pull, remote, insecure=True)
                    ours.append(_timed_async(pull))
                    copy = work / f"skopeo-pull{number}"
                    command = [
                        skopeo,
                        "copy",
                        "-q",
                        "--src-tls-verify=false",
                        f"docker://{remote}",
                        f"oci:{copy}:bench:1",
                    ]
                    theirs.append(_timed_sync(functools.partial(_run, command)))
                _row("pull from a local registry", ours, theirs, blob_bytes, "skopeo")
            finally:
                registry.stop()

        data = os.urandom(total)
        blob_file = work / "blob"
        blob_file.write_bytes(data)
        layout = Layout(work / "ingest")
        layout.ensure()
        ours, theirs = [], []
        for _ in range(rounds):
            for digest in layout.all_blobs():
                layout.remove_blob(digest)

            def ingest() -> None:
                with blob_file.open("rb") as stream:
                    layout.ingest(
                        stream, blob="bench", expected_digest=None, expected_size=None, limit=total
                    )

            ours.append(_timed_sync(ingest))
            theirs.append(_timed_sync(lambda: hashlib.sha256(data).hexdigest()))
        _row("ingest one blob (sha256, write, fsync)", ours, theirs, total, "hashlib")


if __name__ == "__main__":
    main()
