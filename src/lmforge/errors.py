"""The error a user can fix by changing the configuration or the input files."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad setting or input, reported as one line that names the key and the fix.

    ``key`` is the dotted config path at fault (``model.n_heads``), or ``None`` when the fault is
    in an input file rather than a setting.
    """

    def __init__(self, key: str | None, message: str) -> None:
        self.key = key
        super().__init__(message)


class TrainingDiverged(RuntimeError):
    """The training loss or its gradients became NaN or infinite: reported as one line, exit status 3.

    Not a ``ConfigError``: the settings were valid, the run went wrong (too high a learning rate, an
    fp16 overflow, a bad batch). The last checkpoint written before it is kept as it was.
    """


def find_config_error(error: BaseException) -> ConfigError | None:
    """The ``ConfigError`` behind an exception (Hydra's instantiate wraps what a target raises)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
