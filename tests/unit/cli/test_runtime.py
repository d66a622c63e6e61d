"""The malloc setting of the training entry point: applied on glibc, left alone when the user tunes malloc."""

import os
import sys

import pytest

from lmforge.cli.runtime import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_the_setting_applies_on_glibc(monkeypatch):
    for key in [k for k in list(os.environ) if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    assert keep_freed_memory() is True


def test_a_user_malloc_variable_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert keep_freed_memory() is False
