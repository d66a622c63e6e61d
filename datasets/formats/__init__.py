"""What the prepare scripts share: readers of the downloads' file formats, one module per format
(``rest``, ``dictd``, ``sword``, ``rlazyload``), and ``prepared``, the writer of the formats lmforge reads.

The prepare scripts put ``datasets/`` on ``sys.path`` to import this package; it imports lmforge for
its sentence splitter and its splits, so the prepared text and splits are lmforge's own.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


class PrepareError(Exception):
    """A download that is missing or not in the expected format, told in one line."""


def import_reader(module: str) -> ModuleType:
    """A PyPI reader (``pysword``, ``rdata``), or a ``PrepareError`` saying how to install it."""
    package = module.split(".")[0]
    if importlib.util.find_spec(package) is None:
        raise PrepareError(
            f"reading this download needs the {package} package: pip install -e '.[debian]' "
            "(make data-debian and make data-finetune install it)"
        )
    return importlib.import_module(module)
