"""Every example runs to completion and says what it did."""

from __future__ import annotations

import subprocess
import sys

from .helpers import REPO


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


def test_engine_tour_example_on_both_backends() -> None:
    """The engine tour runs every operation on real processes, on asyncio and on trio."""
    for backend in ("asyncio", "trio"):
        output = run_example("engine_tour.py", backend)
        assert "/proc: T" in output
        assert "exit code 143" in output
        assert "wait() -> 3" in output
        assert "exit code 127" in output
        assert "cannot unpause container web" in output
