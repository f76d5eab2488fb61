"""Soak: many full lifecycles in one engine leave no descriptor, thread, task or memory behind.

CI runs a short profile; `make soak` runs 10,000 cycles (LIFECYCLE_SOAK=1).
"""

from __future__ import annotations

import gc
import os
import threading
import weakref

import anyio
import pytest

from lifecycle import Container, Engine

pytestmark = pytest.mark.anyio

CYCLES = 10_000 if os.environ.get("LIFECYCLE_SOAK") else 300


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def our_threads() -> int:
    """Threads other than the backends' worker pools (bounded, idle workers linger a while)."""
    pools = ("Trio thread", "AnyIO worker thread", "asyncio_")
    return sum(not thread.name.startswith(pools) for thread in threading.enumerate())


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


@pytest.mark.timeout(3600)
async def test_lifecycles_leak_nothing() -> None:
    """Descriptors, threads and tasks return to where they started; RSS grows < 5 MiB;
    deleted containers are reclaimed."""
    gone: list[weakref.ref[Container]] = []

    async def cycle(engine: Engine) -> None:
        container = await engine.create(["sh", "-c", "echo hi; exec sleep 60"])
        await container.start()
        await container.restart()
        await container.pause()
        await container.unpause()
        await container.stop()
        await container.remove()
        gone.append(weakref.ref(container))

    with anyio.fail_after(3000):
        async with Engine() as engine:
            for _ in range(20):  # warm up: caches, the thread pool, the renderer...
                await cycle(engine)
            gc.collect()
            descriptors, threads = open_descriptors(), our_threads()
            tasks = len(anyio.get_running_tasks())
            memory = rss_kib()
            for _ in range(CYCLES):
                await cycle(engine)
            gc.collect()
            assert descriptors == open_descriptors()
            assert threads == our_threads(), threading.enumerate()
            assert tasks == len(anyio.get_running_tasks())
            assert rss_kib() - memory < 5 * 1024
            assert [] == engine.containers()
    gc.collect()
    assert all(reference() is None for reference in gone)
