"""Hyper-parameter search: ``python sweep.py hparams_search=lr_warmup n_trials=30 [train.py overrides]``.

An Optuna study whose trials are ordinary ``train()`` runs. Hydra composes two configs: the study's
(``conf/sweep.yaml`` with a search space from ``conf/hparams_search/``) and, for each trial,
``conf/train.yaml`` with the command line's train overrides plus the sampled values. The study lives
in SQLite under ``<paths.log_dir>/sweeps/<study_name>/``: the same command started again continues it
up to ``n_trials`` finished trials.

Why not ``hydra-optuna-sweeper``: it pins optuna 2.10, whose SQLite storage fails under SQLAlchemy 2,
so its studies cannot be resumed. Driving Optuna from Hydra's compose API needs no plugin.

Modules: ``cli`` (the command line), ``configs`` (the two configs; the one import of train.py),
``space`` (the search space), ``settings`` (the study's settings, sampler, pruner), ``storage`` (the
study folder and its lock), ``trial`` (the trial loop), ``pruning`` (the pruning callback), ``report``
(trials.csv, summary.md, the closing lines).
"""

try:
    import optuna  # noqa: F401  (every module of the package needs it: say how to get it, once)
except ModuleNotFoundError as missing:  # an optional extra
    raise ModuleNotFoundError(
        "python sweep.py needs Optuna: pip install -c constraints.txt -e '.[sweep]'", name="optuna"
    ) from missing

from lmforge.cli.sweep.cli import main

__all__ = ["main"]
