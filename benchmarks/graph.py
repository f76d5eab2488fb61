"""Graph benchmark: building the live graph, and rendering it in-process vs the system `dot`.

Run:  .venv/bin/python benchmarks/graph.py            (full size)
      .venv/bin/python benchmarks/graph.py --quick    (a tiny run, as CI does)

Both renderers get the same DOT in the same run, interleaved round by round;
the claim is the ratio. Targets (issue 5): build <= 0.1 ms, warm SVG render
<= 5 ms (medians).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Callable

import graphviz

from lifecycle import State, render
from lifecycle.graph import lifecycle_graph, warm_up
from lifecycle.model import Transition, Trigger

LAST = Transition(State.RUNNING, Trigger.PAUSE, State.PAUSED)


def build() -> graphviz.Digraph:
    return lifecycle_graph(current=State.PAUSED, last=LAST, title="web (3f2a9c1d0b7e): paused")


def median_seconds(function: Callable[[], object], iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="1 round of 5 iterations")
    arguments = parser.parse_args()
    rounds, iterations = (1, 5) if arguments.quick else (arguments.rounds, arguments.iterations)

    started = time.perf_counter()
    warm_up()
    print(f"in-process renderer warm-up (compile): {(time.perf_counter() - started) * 1e3:.0f} ms")
    source = build().source
    system_dot = shutil.which("dot")

    pipe = graphviz.Source(source).pipe
    builds, in_process, external = [], [], []
    for _ in range(rounds):
        builds.append(median_seconds(build, iterations * 10))
        in_process.append(median_seconds(lambda: render(source, "svg"), iterations))
        if system_dot:
            external.append(median_seconds(lambda: pipe(format="svg"), iterations // 4 or 1))

    def line(name: str, values: list[float], scale: float, unit: str) -> str:
        middle = statistics.median(values) * scale
        return (
            f"{name:<34} median {middle:8.3f} {unit}  "
            f"(rounds {min(values) * scale:.3f}-{max(values) * scale:.3f})"
        )

    print(f"rounds={rounds} iterations={iterations}")
    print(line("build container graph", builds, 1e3, "ms"))
    print(line("render svg in-process (wasmtime)", in_process, 1e3, "ms"))
    if system_dot:
        print(line("render svg via system dot", external, 1e3, "ms"))
        ratio = statistics.median(external) / statistics.median(in_process)
        print(f"system dot / in-process: {ratio:.1f}x")
    else:
        print("system dot: not installed (apt-get install graphviz to compare)")


if __name__ == "__main__":
    main()
