"""Readers for the file formats of the ``debian_docs`` corpus, one module per format.

``rest``: reST and plain-text documentation (linux-doc, python3.11-doc); ``gcide``: the dictd
dictionary; ``sword``: SWORD Bible modules (needs PyPI ``pysword``); ``rlazyload``: R's lazy-load
databases (needs PyPI ``rdata``). The PyPI readers are imported only when their part is read.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from lmforge.errors import ConfigError


def missing_reader(module: str, part: str) -> ConfigError | None:
    """The error for a part whose PyPI reader is not installed, or ``None`` when it is (no import)."""
    package = module.split(".")[0]
    if importlib.util.find_spec(package) is not None:
        return None
    return ConfigError(
        "data.corpus.parts",
        f"the {part} part needs the {package} package: run `make data-debian` (or `pip install {package}`)",
    )


def import_reader(module: str, part: str) -> ModuleType:
    error = missing_reader(module, part)
    if error is not None:
        raise error
    return importlib.import_module(module)
