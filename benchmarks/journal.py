"""What the journal costs: the same lifecycle with and without ``Engine(root=...)``, and restore.

Run:  .venv/bin/python benchmarks/journal.py [--quick]

The sequential cycle (create, start, pause, unpause, stop, remove of ``sleep 60``) on
an engine that forgets and on one that journals (every operation waits for its record:
temp file, fsync, rename, directory fsync), rounds alternating in one process, on
asyncio and trio; medians, cycles/s and ms per phase. Then restore: an engine entering
a root that holds N stopped containers (read every record, release leftovers, bring
each back), against entering an empty root, same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import PHASES, phased_cycles
from lifecycle import Engine


async def _round(root: Path | None, cycles: int) -> tuple[float, dict[str, float]]:
    async with Engine(root=root) as engine:
        return await phased_cycles(engine, cycles)


async def _compare(
    rounds: int, cycles: int, scratch: Path
) -> dict[str, tuple[float, dict[str, float]]]:
    results: dict[str, list[tuple[float, dict[str, float]]]] = {"memory": [], "journal": []}
    for number in range(rounds):
        results["memory"].append(await _round(None, cycles))
        results["journal"].append(await _round(scratch / f"cycle-{number}", cycles))
    return {
        kind: (
            statistics.median(rate for rate, _ in runs),
            {phase: statistics.median(run[phase] for _, run in runs) for phase in PHASES},
        )
        for kind, runs in results.items()
    }


async def _enter(root: Path) -> float:
    began = time.perf_counter()
    async with Engine(root=root) as engine:
        entered = time.perf_counter() - began
        del engine
    return entered


async def _restore(count: int, scratch: Path) -> tuple[float, float]:
    root = scratch / "restore"
    async with Engine(root=root) as engine:
        for _ in range(count):
            container = await engine.create(["true"])
            await container.start()
            await container.wait()
    empty = [await _enter(scratch / f"empty-{n}") for n in range(3)]
    full = [await _enter(root) for _ in range(3)]
    return statistics.median(full), statistics.median(empty)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (CI checks it runs)")
    arguments = parser.parse_args()
    rounds, cycles, count = (1, 3, 5) if arguments.quick else (5, 200, 1000)
    print(f"journal cost, {rounds} rounds x {cycles} sequential cycles, medians")
    for backend in ("asyncio", "trio"):
        with tempfile.TemporaryDirectory() as scratch:
            found = anyio.run(_compare, rounds, cycles, Path(scratch), backend=backend)
            memory, journal = found["memory"], found["journal"]
            print(
                f"\n{backend}: cycles/s in memory {memory[0]:.0f}, journaled {journal[0]:.0f} "
                f"({memory[0] / journal[0]:.2f}x the time with the journal)"
            )
            for phase in PHASES:
                print(
                    f"  {phase:<8} ms  in memory {memory[1][phase]:.3f}  "
                    f"journaled {journal[1][phase]:.3f}"
                )
            full, empty = anyio.run(_restore, count, Path(scratch), backend=backend)
            print(
                f"  restore of {count} stopped containers: entering takes {full * 1e3:.1f} ms "
                f"({empty * 1e3:.1f} ms with none)"
            )


if __name__ == "__main__":
    main()
