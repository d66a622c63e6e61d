"""How a step of ``bench/gpu_check.py`` runs things and records what it found.

``Context.train`` runs ``python train.py <overrides>`` in a folder of the work area, time-boxed (the
whole process group is killed at the limit), its output in a log, and reads back what the run wrote
(``csv/metrics.csv``, ``result.json``). ``Outcome`` collects a step's figures, checks, skipped parts,
errors (with the end of the log that explains them) and report lines.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpu_check_steps import Mode

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
LOG_TAIL_LINES = 60  # lines of a run's log kept in gpu-check.log and in a failure's record
# Every run: no progress bar or model summary, no sanity validation.
QUIET = (
    "callbacks.rich_progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
)


LIVE: set[subprocess.Popen] = set()  # the commands running now (stopped when this process is)


def run_command(args: list[str], log: Path, timeout: float, env: dict[str, str]) -> tuple[int | None, float]:
    """Run ``args`` in a session of its own, its output into ``log``; at ``timeout`` seconds stop its
    whole process group (data-loading workers too). Returns (exit status, None if stopped; seconds)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w") as stream:
        stream.write(f"$ {shlex.join(args)}\n")
        stream.flush()
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True
        )
        LIVE.add(process)
        try:
            status: int | None = process.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            stop(process)
            status = None
        except BaseException:  # this process is interrupted: its commands go too
            stop(process)
            raise
        finally:
            LIVE.discard(process)
    return status, time.perf_counter() - started


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the process group (a step passes it on to its runs), SIGKILL after ``grace`` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stop_commands_and_exit(signum: int, frame: Any) -> None:
    """A SIGTERM handler: stop every command this process runs (threads' too), then exit."""
    for process in list(LIVE):
        stop(process)
    raise SystemExit(128 + signum)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def read_metrics(folder: Path) -> list[dict[str, str]]:
    """The rows of a run's newest ``csv/metrics.csv`` (a resumed run moves the earlier ones aside)."""
    path = folder / "csv" / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class Run:
    """One ``python train.py`` run: its folder, how it ended, and what its CSV logger wrote."""

    name: str
    folder: Path
    log: Path
    status: int | None  # exit status; None: killed at its time limit
    seconds: float
    rows: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 0

    def ended(self) -> str:
        return "timed out" if self.status is None else f"exit status {self.status}"

    def last(self, key: str) -> float | None:
        """The last value of ``key`` the run logged."""
        values = [row[key] for row in self.rows if row.get(key)]
        return float(values[-1]) if values else None

    def losses(self) -> dict[int, str]:
        """The training loss by step, as written (strings: an exact comparison stays exact)."""
        return {int(row["step"]): row["train/loss"] for row in self.rows if row.get("train/loss")}

    def first_step(self) -> int | None:
        return min(self.losses(), default=None)

    def result(self) -> dict[str, Any]:
        return read_json(self.folder / "result.json")


@dataclass
class Context:
    """What a step needs: the mode, the work folder, its deadline, and how to start train.py."""

    mode: Mode
    work: Path
    step: str
    deadline: float  # time.time() by which the step must be done

    @property
    def cuda(self) -> bool:
        return not self.mode.dry

    def time_left(self) -> float:
        return self.deadline - time.time()

    def env(self) -> dict[str, str]:
        """The runs' environment: bench/ importable (signal_at_step), no hub, no W&B, whole errors."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(BENCH)) if p)
        env.update(HF_HUB_OFFLINE="1", WANDB_MODE="disabled", HYDRA_FULL_ERROR="1")
        if self.mode.dry:
            env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def train(self, name: str, overrides: list[str], cap: float, log_name: str | None = None) -> Run:
        """``python train.py overrides`` in the folder ``runs/<name>``, for at most ``cap`` seconds
        and never past the step's deadline; ``log_name`` names a second run in the same folder."""
        folder = self.work / "runs" / name
        log = self.work / "logs" / f"{self.step}.{log_name or name}.log"
        args = [
            sys.executable,
            str(ROOT / "train.py"),
            *overrides,
            *QUIET,
            f"paths.data_dir={self.work / 'data'}",
            f"paths.log_dir={self.work / 'logs'}",
            f"hydra.run.dir={folder}",
        ]
        status, seconds = run_command(args, log, min(cap, self.time_left() - 2), self.env())
        return Run(log_name or name, folder, log, status, seconds, read_metrics(folder))

    def train_once(self, name: str, overrides: list[str], cap: float) -> Run:
        """Like ``train``, but a run that finished in an earlier step is read back, not run again."""
        done = self.work / "runs" / name / ".finished"
        if done.is_file():
            return Run(name, done.parent, Path(done.read_text()), 0, 0.0, read_metrics(done.parent))
        run = self.train(name, overrides, cap)
        if run.ok:
            done.write_text(str(run.log))
        return run

    def environment(self) -> dict[str, Any]:
        """What the environment step found (the GPU's bf16 peak among it); {} when it did not run."""
        return read_json(self.work / "environment.json")

    def step_record(self, name: str) -> dict[str, Any]:
        """The record an earlier step wrote; {} when it did not run."""
        return read_json(self.work / "steps" / f"{name}.json")


class Outcome:
    """What a step found: figures, checks, skipped parts, errors and the lines of its report section."""

    def __init__(self) -> None:
        self.failed = False
        self.headline = ""
        self.figures: dict[str, Any] = {}
        self.checks: list[dict[str, Any]] = []
        self.skipped: list[str] = []
        self.errors: list[dict[str, str]] = []
        self.lines: list[str] = []

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.checks.append({"what": what, "ok": bool(ok), "detail": detail})
        self.failed |= not ok
        return bool(ok)

    def error(self, what: str, text: str) -> None:
        self.errors.append({"what": what, "tail": text})
        self.failed = True

    def run_ok(self, run: Run, what: str | None = None) -> bool:
        """Check that ``run`` ran to the end; when it did not, keep the end of its log."""
        what = what or f"`{run.name}` runs to the end"
        if self.check(what, run.ok, f"{run.ended()} after {run.seconds:.0f} s"):
            return True
        self.error(f"{run.name} ({run.ended()})", tail(run.log))
        return False

    def skip_part(self, what: str, reason: str) -> None:
        self.skipped.append(f"{what}: {reason}")

    def record(self) -> dict[str, Any]:
        """passed; failed (a check failed or something raised); partial (what ran passed, some
        parts were skipped)."""
        status = "failed" if self.failed else "partial" if self.skipped else "passed"
        return {
            "status": status,
            "headline": self.headline,
            "figures": self.figures,
            "checks": self.checks,
            "skipped_parts": self.skipped,
            "errors": self.errors,
            "lines": self.lines,
        }


def fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def compare_losses(
    out: Outcome,
    key: str,
    what: str,
    reference: dict[int, str],
    other: dict[int, str],
    tolerance: float | None,
) -> None:
    """Check that ``other`` logged every step of ``reference``, each loss within ``tolerance`` of it
    (relative); record the largest difference (``<key>_max_relative_difference``) and whether the
    two are identical to the last digit written (``<key>_identical``). ``tolerance=None``: record
    the figures only."""
    common = sorted(set(reference) & set(other))
    differences = [
        abs(float(other[s]) - float(reference[s])) / max(abs(float(reference[s])), 1e-12) for s in common
    ]
    largest = max(differences, default=None)
    identical = bool(common) and all(reference[s] == other[s] for s in common)
    out.figures[f"{key}_max_relative_difference"] = largest
    out.figures[f"{key}_identical"] = identical
    missing = sorted(set(reference) - set(other))
    detail = f"{len(common)} steps, largest relative difference {fmt(largest, '.2e')}"
    detail += " (bit-identical)" if identical else ""
    detail += f"; steps missing: {missing}" if missing else ""
    if tolerance is None:
        out.lines.append(f"- {what}: {detail}")
        return
    ok = not missing and largest is not None and largest <= tolerance
    out.check(f"{what}: every step's loss within {tolerance:g} (relative)", ok, detail)
