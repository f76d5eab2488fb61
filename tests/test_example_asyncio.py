"""The asyncio example, run as asyncio-native code under pytest-asyncio."""

from __future__ import annotations

import asyncio
import importlib.util
from types import ModuleType

import pytest

from .helpers import REPO


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.asyncio
async def test_plain_asyncio_program_reacts_to_die(capsys: pytest.CaptureFixture[str]) -> None:
    """Embedded in asyncio, the example restarts its crashing worker on each die, three times."""
    example = load_example("asyncio_embedding")
    codes = await asyncio.wait_for(example.supervise_flaky_worker(max_restarts=3), timeout=30)
    assert [7, 7, 7, 7] == codes
    output = capsys.readouterr().out
    assert 4 == output.count("worker died with exit code 7")
    assert "giving up after 3 restarts" in output
