"""One prepared check of lmforge on a CUDA GPU, and the same steps as a dry run on the CPU.

``scripts/gpu_check.sh OUT`` installs the wheels the GPU machine lacks and runs this script. It runs
the steps of ``gpu_check_steps.STEPS`` one after the other, each in a process of its own with a time
limit, all within a budget (a step that would start too late is recorded as skipped), and after each
step rewrites three files in OUT: ``gpu-check.md`` (the report), ``gpu-check.json`` (every figure,
check and error) and ``gpu-check.log`` (the end of every run's log). A run cut short still leaves
its report; a failing step is recorded with the end of its log, and the next one runs.

Steps (sizes on the GPU; ``--dry``: each at tiny sizes on the CPU, what needs CUDA skipped or stood
in for, and said so in the report):

  environment         the GPU, versions, bf16, flash attention, an 8192^3 bf16 matrix product
  data                the stdlib corpus tokenised once for each tokenizer kind (BPE, WordPiece)
  gpt2_small          bf16-mixed, 32 x 1024 tokens, 100 steps: tokens/s, MFU
  gpt2_small_compile  the same with compile=true (target: MFU >= 45 %)
  tinyllama_1b        bf16-mixed, 8 x 2048 tokens, 20 steps: tokens/s, MFU, peak memory
  bert_base           MLM + NSP, bf16-mixed, 256 x 128 tokens, 60 steps: tokens/s, MFU
  deepspeed           ZeRO-2 and ZeRO-3 (gpt_mini, fp32, no dropout, 30 steps) against strategy=auto;
                      ZeRO-3 stopped by SIGTERM and resumed with resume=auto; ZeRO-3 with peft=lora
  fsdp                strategy=fsdp with param_dtype=bfloat16, and with meta_init=true
  exact_resume        gpt_mini bf16-mixed with dropout, SIGTERM at step 15, resume=auto: its losses
                      against the uninterrupted run's
  peft_memory         bert_base fine-tuning at 8 x 128 and 32 x 512: full vs lora, prefix, adapter
                      (torch.cuda.max_memory_allocated; target <= 0.35x of full fine-tuning)
  decoding            gpt2_small greedy, 256 new tokens: KV cache against transformers' generate()

MFU: the ThroughputMonitor's FLOP/s per device (lmforge's flops_per_token, 6 N + 12 L d T a token)
over the GPU's dense bf16 peak, for an H200 989.4 TFLOP/s (``gpu_check_steps.bf16_peak`` says why not
Lightning's table), and also over the bf16 matrix-product rate the environment step measures.

Usage: python bench/gpu_check.py OUT [--dry] [--only STEP,STEP] [--budget SECONDS] [--work DIR]
(``scripts/gpu_check.sh`` sets PYTHONPATH; docs/gpu-check.md tells the rest)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from gpu_check_runs import Context, Outcome, read_json, run_command, stop_commands_and_exit, tail
from gpu_check_steps import DRY, GPU, STEPS, Mode, Step

REPORT, FIGURES, LOG = "gpu-check.md", "gpu-check.json", "gpu-check.log"
STATUSES = ("passed", "failed", "partial", "skipped")  # partial: what ran passed, some parts skipped
GRACE = 20  # seconds past a step's deadline before its process is killed (it stops its runs itself)


def run_step(name: str, mode: Mode, work: Path, deadline: float) -> None:
    """Run one step in this process; write its record to ``work/steps/<name>.json``."""
    step = next(s for s in STEPS if s.name == name)
    out = Outcome()
    try:
        step.run(Context(mode, work, name, deadline), out)
    except Exception:
        out.error(f"{name} raised", traceback.format_exc(limit=-8))
    path = work / "steps" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out.record(), default=str, indent=1))


def run_step_process(step: Step, mode: Mode, work: Path, limit: float) -> dict[str, Any]:
    """Run ``step`` in a process of its own for at most ``limit`` seconds; its record."""
    log = work / "logs" / f"{step.name}.log"
    deadline = time.time() + limit
    args = [sys.executable, __file__, "--step", step.name, "--work", str(work), "--deadline", str(deadline)]
    status, seconds = run_command(
        [*args, *(["--dry"] if mode.dry else [])], log, limit + GRACE, dict(os.environ)
    )
    record = read_json(work / "steps" / f"{step.name}.json")
    if not record:
        ended = "timed out" if status is None else f"exit status {status}"
        record = {
            "status": "failed",
            "reason": f"the step's process ended ({ended}) without a record",
            "errors": [{"what": f"{step.name} ({ended})", "tail": tail(log)}],
        }
    return {**record, "seconds": seconds}


def check(out_dir: Path, mode: Mode, work: Path, only: set[str] | None, budget: float) -> dict[str, Any]:
    """Run the steps within ``budget`` seconds; rewrite the report after each."""
    started = time.time()
    report: dict[str, Any] = {
        "mode": "dry run on the CPU" if mode.dry else "GPU",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": os.environ.get("GPU_CHECK_COMMAND") or shlex.join(["python", *sys.argv]),
        "budget_s": budget,
        "elapsed_s": 0.0,
        "environment": {},
        "steps": [],
    }
    for step in STEPS:
        left = budget - (time.time() - started)
        record: dict[str, Any] = {"name": step.name, "title": step.title, "seconds": 0.0}
        if only is not None and step.name not in only:
            record.update(status="skipped", reason="not selected (GPU_CHECK_ONLY)")
        elif left < mode.min_start:
            record.update(
                status="skipped", reason=f"out of time: {left:.0f} s of the {budget:.0f} s budget left"
            )
        else:
            record.update(run_step_process(step, mode, work, left if mode.dry else min(step.cap, left)))
        report["steps"].append(record)
        if step.name == "environment":
            report["environment"] = record.get("figures", {})
        report["elapsed_s"] = time.time() - started
        write_outputs(out_dir, work, report)
        said = record.get("headline") or record.get("reason") or ""
        took = f"{record['status']} ({record['seconds']:.0f} s)"
        print(f"[{report['elapsed_s']:4.0f} s] {step.name}: {took} {said}", flush=True)
    return report


def write_outputs(out_dir: Path, work: Path, report: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / FIGURES).write_text(json.dumps(report, default=str, indent=1) + "\n")
    (out_dir / REPORT).write_text(markdown(report))
    logs = sorted((work / "logs").glob("*.log"), key=lambda path: path.stat().st_mtime)
    (out_dir / LOG).write_text("".join(f"==> {path.name} <==\n{tail(path)}\n\n" for path in logs))


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        f"# lmforge GPU check ({report['mode']})",
        "",
        f"- Date: {report['date']}",
        f"- Command: `{report['command']}`",
        f"- Machine: {env.get('device', 'unknown')}; Python {env.get('python')}, torch {env.get('torch')} "
        f"(CUDA {env.get('torch_cuda')}), lightning {env.get('lightning')}, deepspeed {env.get('deepspeed')}",
        f"- Time: {report['elapsed_s']:.0f} s of a {report['budget_s']:.0f} s budget",
    ]
    if report["mode"] != "GPU":
        lines.append(
            "- A dry run at tiny sizes on the CPU: its figures measure nothing, it shows that the steps run."
        )
    if env.get("peak_bf16_tflops"):
        lines.append(
            f"- MFU against {env['peak_bf16_tflops']:.1f} TFLOP/s ({env.get('peak_source')}); the bf16 "
            f"matrix product measured {env.get('matmul_bf16_tflops', 0):.0f} TFLOP/s"
        )
    lines += ["", "| step | status | seconds | result |", "|---|---|---:|---|"]
    for step in report["steps"]:
        said = step.get("headline") or step.get("reason") or ""
        lines.append(
            f"| [{step['name']}](#{step['name']}) | {step['status']} | {step['seconds']:.0f} | {said} |"
        )
    for step in report["steps"]:
        lines += [
            "",
            f"## {step['name']}",
            "",
            f"{step['title']}: **{step['status']}** ({step['seconds']:.0f} s)",
        ]
        if step.get("reason"):
            lines += ["", step["reason"]]
        if step.get("lines"):
            lines += ["", *step["lines"]]
        if step.get("checks") or step.get("skipped_parts"):
            lines.append("")
        for check in step.get("checks", []):
            detail = f": {check['detail']}" if check.get("detail") else ""
            lines.append(f"- [{'x' if check['ok'] else ' '}] {check['what']}{detail}")
        lines += [f"- skipped: {part}" for part in step.get("skipped_parts", [])]
        for error in step.get("errors", []):
            lines += ["", f"{error['what']}:", "", "```text", error["tail"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", nargs="?", type=Path, help="the folder for gpu-check.md, .json and .log")
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU (what needs CUDA: skipped)")
    parser.add_argument("--only", default="", help="steps to run, comma-separated (the others: skipped)")
    parser.add_argument("--budget", type=float, help="seconds for all the steps (480 on a GPU, 1200 dry)")
    parser.add_argument("--work", type=Path, help="the folder for runs, data and logs (default: a new one)")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # one step, in this process
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_commands_and_exit)  # no run outlives the check
    mode = DRY if args.dry else GPU
    work = args.work or Path(tempfile.mkdtemp(prefix="lmforge-gpu-check."))
    if args.step:
        run_step(args.step, mode, work, args.deadline)
        return
    if args.out is None:
        parser.error("give the folder for the report")
    only = {name for name in args.only.split(",") if name} or None
    unknown = sorted((only or set()) - {step.name for step in STEPS})
    if unknown:
        parser.error(f"no step {', '.join(unknown)}; the steps: {', '.join(step.name for step in STEPS)}")
    report = check(args.out, mode, work, only, args.budget or mode.budget)
    failed = [step["name"] for step in report["steps"] if step["status"] == "failed"]
    print(f"wrote {args.out / REPORT}, {FIGURES} and {LOG}; failed: {', '.join(failed) or 'none'}")


if __name__ == "__main__":
    main()
