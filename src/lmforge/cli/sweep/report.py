"""What a study tells its user: ``trials.csv`` and ``summary.md`` in its folder, and the closing lines."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lmforge.run.tables import markdown_table, write_csv

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def count_states(trials: Sequence[FrozenTrial]) -> str:
    counts = {state: sum(t.state == state for t in trials) for state in FINISHED}
    return (
        f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed"
    )


def format_param(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def trial_rows(study: optuna.Study) -> tuple[list[str], list[dict[str, str]]]:
    """One row per trial: state, value, last reported step, duration, parameters, error."""
    params = list(dict.fromkeys(key for trial in study.trials for key in trial.params))
    header = ["number", "state", "value", "step", "duration_s", *params, "error"]
    rows = []
    for trial in study.trials:
        steps = trial.intermediate_values
        duration = trial.duration.total_seconds() if trial.duration else None
        rows.append(
            {
                "number": str(trial.number),
                "state": trial.state.name,
                "value": "" if trial.value is None else f"{trial.value:.6g}",
                "step": str(max(steps)) if steps else "",
                "duration_s": "" if duration is None else f"{duration:.1f}",
                **{key: format_param(trial.params.get(key)) for key in params},
                "error": trial.user_attrs.get("error", ""),
            }
        )
    return header, rows


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    return study.best_trial if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) else None


def rerun_command(trial: FrozenTrial, base_overrides: list[str]) -> str:
    overrides = [o for o in base_overrides if not o.startswith("optimized_metric=")]
    return shlex.join(["python", "train.py", *overrides, *trial.user_attrs.get("overrides", [])])


def write_tables(study: optuna.Study, study_dir: Path, base_overrides: list[str]) -> None:
    """``trials.csv`` and ``summary.md`` in the study folder, rewritten after every trial, so that a
    killed sweep still leaves them current."""
    header, rows = trial_rows(study)
    write_csv(study_dir / "trials.csv", header, rows)

    metric = study.user_attrs.get("metric", "value")
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    lines = [
        f"# Study {study.study_name}",
        "",
        f"{study.direction.name.lower()} {metric}; "
        f"{len(finished)} trials finished ({count_states(finished)}).",
        "",
    ]
    best = best_trial(study)
    if best is not None:
        lines += [
            f"Best: trial {best.number}, {metric}={best.value:.6g}. Train it again:",
            "",
            "```bash",
            rerun_command(best, base_overrides),
            "```",
            "",
        ]
    table = markdown_table(header, [[row[key] for key in header] for row in rows])
    (study_dir / "summary.md").write_text("\n".join(lines) + "\n" + table)


def report(study: optuna.Study, study_dir: Path, base_overrides: list[str]) -> None:
    """Print the study's outcome and the best trial's parameters (the tables hold every trial)."""
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    metric = study.user_attrs.get("metric", "value")
    print(
        f"study {study.study_name}: {len(finished)} trials finished ({count_states(finished)}) in {study_dir}"
    )
    best = best_trial(study)
    if best is None:
        print("no trial completed: see the errors in trials.csv")
        return
    print(f"best trial {best.number}: {metric}={best.value:.6g}")
    for key, value in best.params.items():
        print(f"  {key}={format_param(value)}")
    print(f"train it again: {rerun_command(best, base_overrides)}")
    print(f"every trial: {study_dir / 'summary.md'} and trials.csv")
