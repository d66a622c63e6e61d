"""Crash-safe checkpoint writes: a save replaces the file whole and leaves no temporary behind."""

from __future__ import annotations

from lmforge.io.atomic import AtomicCheckpointIO, atomic_torch_save
from tests.conftest import step_of


def test_an_atomic_save_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, path)
    (path.parent / ".last.ckpt.tmp-stale").write_bytes(b"left by a killed save")
    atomic_torch_save({"global_step": 2}, path)
    assert step_of(path) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
