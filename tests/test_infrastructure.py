"""The test set-up itself: both anyio backends, strict pytest-asyncio, hard timeouts."""

from __future__ import annotations

import asyncio

import anyio
import pytest
import trio


@pytest.mark.anyio
async def test_anyio_tests_run_on_the_named_backend(anyio_backend: str) -> None:
    """Each anyio test really runs under the backend its parameter names."""
    with anyio.fail_after(5):
        await anyio.lowlevel.checkpoint()
        if anyio_backend == "trio":
            assert trio.lowlevel.current_task() is not None
            with pytest.raises(RuntimeError):
                asyncio.get_running_loop()
        else:
            assert asyncio.get_running_loop() is not None
            with pytest.raises(RuntimeError):
                trio.lowlevel.current_task()


def test_both_backends_are_parametrised(request: pytest.FixtureRequest) -> None:
    """The anyio_backend fixture offers asyncio and trio."""
    definitions = request._fixturemanager.getfixturedefs("anyio_backend", request.node)
    assert definitions
    assert ["asyncio", "trio"] == list(definitions[-1].params or [])


@pytest.mark.asyncio
async def test_pytest_asyncio_serves_marked_tests() -> None:
    """pytest-asyncio (strict mode) runs tests marked asyncio on an asyncio loop."""
    assert asyncio.get_running_loop() is not None


def test_every_test_has_a_hard_timeout(pytestconfig: pytest.Config) -> None:
    """pytest-timeout is active with a finite default, and warnings are errors."""
    assert 0 < float(pytestconfig.getini("timeout")) <= 120
    assert "error" in pytestconfig.getini("filterwarnings")
