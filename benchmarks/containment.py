"""What cgroup containment costs the native driver: one lifecycle per container, by phase.

Run (as root, for the cgroup side):  .venv/bin/python benchmarks/containment.py [--quick]

The same sequential cycle (create, start, pause, unpause, stop, remove of ``sleep 60``)
with ``NativeDriver(containment="cgroup")`` and ``containment="process-group"``, rounds
alternating in one process, on asyncio and trio; medians of the rounds, in cycles/s and
in milliseconds per phase. The ratio is the claim (cgroup time / process-group time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import PHASES, phased_cycles
from lifecycle import Engine
from lifecycle.runtime.native import NativeDriver


async def _round(containment: str, cycles: int) -> tuple[float, dict[str, float]]:
    """cycles/s and the mean milliseconds of each phase, for one engine."""
    async with Engine(drivers=[NativeDriver(containment=containment)]) as engine:  # type: ignore[arg-type]
        return await phased_cycles(engine, cycles)


async def _compare(rounds: int, cycles: int) -> dict[str, tuple[float, dict[str, float]]]:
    results: dict[str, list[tuple[float, dict[str, float]]]] = {"cgroup": [], "process-group": []}
    for _ in range(rounds):
        for containment, runs in results.items():
            runs.append(await _round(containment, cycles))
    return {
        containment: (
            statistics.median(rate for rate, _ in runs),
            {phase: statistics.median(run[phase] for _, run in runs) for phase in PHASES},
        )
        for containment, runs in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (CI checks it runs)")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("cgroup containment needs root: nothing to compare")
        return
    rounds, cycles = (1, 5) if arguments.quick else (5, 300)
    print(f"containment cost, {rounds} rounds x {cycles} sequential cycles, medians")
    for backend in ("asyncio", "trio"):
        found = anyio.run(_compare, rounds, cycles, backend=backend)
        cgroup, group = found["cgroup"], found["process-group"]
        print(
            f"\n{backend}: cycles/s cgroup {cgroup[0]:.0f}, process group {group[0]:.0f}, "
            f"{group[0] / cgroup[0]:.2f}x the time with a cgroup"
        )
        for phase in PHASES:
            cgroup_ms, group_ms = cgroup[1][phase], group[1][phase]
            print(f"  {phase:<8} ms  cgroup {cgroup_ms:.3f}  process group {group_ms:.3f}")


if __name__ == "__main__":
    main()
