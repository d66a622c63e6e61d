"""How the command line reports an error a user can fix: one ``error:`` line on stderr, exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from lmforge.errors import find_config_error

T = TypeVar("T")


def exit_on_config_error(run: Callable[[], T]) -> T:
    """Call ``run``; a ``ConfigError`` behind what it raises prints ``error: ...`` and exits with 2."""
    try:
        return run()
    except Exception as error:
        config_error = find_config_error(error)
        if config_error is None:
            raise
        print(f"error: {config_error}", file=sys.stderr)
        raise SystemExit(2) from None
