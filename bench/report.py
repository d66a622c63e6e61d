"""Assemble ``bench/RESULTS.md`` from the sections the benchmarks wrote to ``bench/results/*.md``.

A header names the machine, the versions and the thread setting; the sections follow in a fixed
order (those this script does not know come last, by name), each with the command that made it.

Usage: python bench/report.py   (after the benchmarks; ``make bench`` runs both)
"""

from __future__ import annotations

import datetime
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from common import RESULTS, ROOT

ORDER = ("train_step", "peft_memory", "decode", "data_pipeline", "mfu_gpu")
PACKAGES = ("torch", "transformers", "lightning", "tokenizers")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def header() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{name} {installed(name)}" for name in PACKAGES)
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `make bench` (`bench/report.py` puts together the sections in `bench/results/`); "
            "each section ends with the command that made it.",
            "",
            f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {memory:.0f} GiB memory",
            f"- Python {platform.python_version()}; {versions}",
            f"- OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        ]
    )


def main() -> None:
    found = {path.stem: path for path in sorted(RESULTS.glob("*.md"))}
    names = [name for name in ORDER if name in found] + sorted(set(found) - set(ORDER))
    sections = [found[name].read_text().strip() for name in names]
    out = ROOT / "bench" / "RESULTS.md"
    out.write_text("\n\n".join([header(), *sections]) + "\n")
    print(f"wrote {out.relative_to(ROOT)}: {', '.join(names) or 'no sections'}")


if __name__ == "__main__":
    main()
