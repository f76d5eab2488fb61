"""Atomic writes: whole files, sensible modes, no debris."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle._files import write_atomically


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask_022")
def test_new_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    """A new file is 0644 under umask 022, as open() would make it."""
    target = write_atomically(tmp_path / "sub" / "x.svg", b"<svg/>")
    assert b"<svg/>" == target.read_bytes()
    assert 0o644 == stat.S_IMODE(target.stat().st_mode)


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    """Replacing a file keeps the mode it had."""
    target = tmp_path / "x.svg"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomically(target, b"new")
    assert (b"new", 0o640) == (target.read_bytes(), stat.S_IMODE(target.stat().st_mode))


def test_failed_write_leaves_no_debris_and_keeps_the_old_file(tmp_path: Path) -> None:
    """A write that fails midway leaves the old content and no temporary file."""
    target = tmp_path / "x.svg"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomically(target, "not bytes")  # type: ignore[arg-type]
    assert b"old" == target.read_bytes()
    assert ["x.svg"] == sorted(p.name for p in tmp_path.iterdir())
