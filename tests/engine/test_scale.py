"""A fleet on one engine: the descriptor limit is raised so it is not capped at ~336.

The scale figures themselves (10,000 live, latencies against the idle ones) are
measured in ``benchmarks/scale.py``, never asserted here.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]

# 400 running containers with their output captured need 1,200 descriptors: more than a
# soft limit of 1,024 allows (about 336 containers), well under this machine's hard one.
FLEET = 400

FLEET_SCRIPT = f"""
import json, resource, sys
import anyio
from lifecycle import Engine

async def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, int(sys.argv[1])))
    async with Engine(observe_interval=None) as engine:
        fleet = [await engine.create(["sleep", "60"]) for _ in range({FLEET})]
        for container in fleet:
            await container.start()
        running = sum(c.state.value == "running" for c in fleet)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        statistics = engine.statistics()
        print(json.dumps([running, soft, statistics.open_files_limit]), flush=True)

anyio.run(main, backend=sys.argv[2])
"""


async def test_a_fleet_larger_than_a_1024_descriptor_limit_allows_starts(
    anyio_backend: str,
) -> None:
    """With a soft NOFILE limit of 1,024 (a shell's default) the engine raises it to the
    hard limit at entry, says so in statistics(), and 400 containers with captured output
    all start (without the raise, the 337th start fails: EMFILE)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 3 * FLEET + 100:
        pytest.skip(f"the hard NOFILE limit here ({hard}) is too low to show the raise")
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-c", FLEET_SCRIPT, str(hard), anyio_backend], cwd=REPO
        )
    running, soft, reported = json.loads(result.stdout.decode().splitlines()[-1])
    assert FLEET == running
    assert soft > 1024
    assert soft == reported
