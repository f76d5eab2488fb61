"""Every example runs to completion and says what it did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO
from .oshelpers import require_root


def run_example(name: str, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *arguments],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stderr.decode()
    return result.stdout.decode()


def test_state_model_example() -> None:
    """The state-model example walks the lifecycle and shows the refusal message."""
    output = run_example("state_model.py")
    assert "start: created -> running" in output
    assert "refused: cannot pause container web: container is stopped" in output
    assert "now deleted" in output


def test_basic_lifecycle_example_on_both_backends() -> None:
    """The basic lifecycle example runs every operation on real processes, both backends."""
    for backend in ("asyncio", "trio"):
        output = run_example("basic_lifecycle.py", backend)
        frozen = "/proc: D" if "containment cgroup" in output else "/proc: T"
        assert frozen in output.split("paused ")[1].splitlines()[0]
        assert "exit code 143" in output
        assert "wait() -> 3" in output
        assert "exit code 127" in output
        assert "cannot unpause container web" in output


def test_live_graph_example_keeps_fleet_svg(tmp_path: Path) -> None:
    """The live-graph example writes fleet.svg and web.svg showing the final fleet."""
    output = run_example("live_graph.py", str(tmp_path))
    assert "renders of" in output
    fleet = (tmp_path / "fleet.svg").read_text()
    assert "fleet: 7 containers" in fleet
    assert "deleted (1)" in fleet
    assert "paused" in (tmp_path / "web.svg").read_text()


def test_graph_benchmark_still_runs() -> None:
    """benchmarks/graph.py runs in its tiny CI size and prints its medians."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "graph.py"), "--quick"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert 0 == result.returncode, result.stderr.decode()
    assert b"render svg in-process (wasmtime)" in result.stdout


def test_event_subscriber_example() -> None:
    """The subscriber example sees web's start and die (exit 3); the callback sees everything."""
    output = run_example("event_subscriber.py")
    assert "[subscriber] web exited with 3" in output
    assert "[callback] create   web" in output
    assert "[callback] stop     other" in output  # the engine's own shutdown, delivered


def test_fleet_example(tmp_path: Path) -> None:
    """The fleet example cycles 100 containers concurrently and writes the fleet graph."""
    output = run_example("fleet.py", str(tmp_path))
    for operation in ("start", "pause", "unpause", "stop"):
        assert f"{operation:<8} 100 containers concurrently" in output
    svg = (tmp_path / "fleet-100.svg").read_text()
    assert "deleted (50)" in svg
    assert "stopped (50)" in svg


def quick_benchmark(script: str) -> str:
    """Run ``benchmarks/<script> --quick``; its output (the test fails if it fails)."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--quick"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert 0 == result.returncode, result.stderr.decode()[-2000:]
    return result.stdout.decode()


@pytest.mark.timeout(300)
def test_benchmark_suite_still_runs() -> None:
    """benchmarks/suite.py runs end to end in its tiny CI size, supervisord included."""
    output = quick_benchmark("suite.py")
    for section in ("cycle/s, sequential, asyncio", "fleet of 20", "exit latency", "supervisord"):
        assert section in output


@pytest.mark.timeout(300)
def test_image_benchmark_still_runs() -> None:
    """benchmarks/images.py runs in its tiny CI size, with skopeo and a registry as peers."""
    from .images.tools import require  # noqa: PLC0415

    for tool in ("skopeo", "docker-registry"):
        require(tool)
    output = quick_benchmark("images.py")
    for row in ("import OCI layout", "pull from a local registry", "ingest one blob"):
        assert row in output


@pytest.mark.timeout(300)
def test_rootfs_benchmark_still_runs() -> None:
    """benchmarks/rootfs.py runs in its tiny size (it needs root for the overlay mounts)."""
    require_root("the rootfs benchmark (overlay mounts)")
    output = quick_benchmark("rootfs.py")
    for row in ("set-up + tear-down, overlayfs", "set-up + tear-down, vfs", "disk for 10"):
        assert row in output


@pytest.mark.timeout(300)
def test_containment_benchmark_still_runs() -> None:
    """benchmarks/containment.py compares both containments in its tiny CI size (as root)."""
    output = quick_benchmark("containment.py")
    if os.geteuid() != 0:
        assert "needs root" in output
        return
    for text in ("asyncio: cycles/s cgroup", "trio: cycles/s cgroup", "unpause"):
        assert text in output


@pytest.mark.timeout(300)
def test_journal_benchmark_still_runs() -> None:
    """benchmarks/journal.py compares an engine with and without a journal, and restores."""
    output = quick_benchmark("journal.py")
    for text in ("asyncio: cycles/s in memory", "trio: cycles/s in memory", "restore of 5"):
        assert text in output


@pytest.mark.timeout(300)
def test_oci_benchmark_still_runs() -> None:
    """benchmarks/oci.py runs end to end in its tiny CI size (as root with runc)."""
    output = quick_benchmark("oci.py")
    if "nothing to measure" in output:
        return
    for text in ("engine (runc)", "raw runc by hand", "runc run", "exit detection"):
        assert text in output


@pytest.mark.timeout(300)
def test_api_benchmark_still_runs() -> None:
    """benchmarks/api.py runs in its tiny CI size (root, runc and the docker CLI)."""
    require_root("the API benchmark (image containers under runc)")
    from .images.tools import require  # noqa: PLC0415

    for tool in ("runc", "docker", "busybox"):
        require(tool)
    output = quick_benchmark("api.py")
    for text in ("engine in-process", "Docker SDK", "docker CLI", "GET /_ping"):
        assert text in output


@pytest.mark.timeout(300)
def test_scale_benchmark_still_runs() -> None:
    """benchmarks/scale.py runs in its tiny size (fleets of 1 and 10, both backends)."""
    output = quick_benchmark("scale.py")
    assert "RLIMIT_NOFILE soft" in output
    for backend in ("asyncio", "trio"):
        assert f"{backend}: fleet" in output
    assert 4 == sum(line.split()[:1] in (["1"], ["10"]) for line in output.splitlines())
