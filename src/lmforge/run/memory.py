"""Memory of this process: the peak so far and how to start a new one (GPU allocator or CPU resident set)."""

from __future__ import annotations

import resource
import sys

import torch


def peak_bytes(device: torch.device) -> int:
    """The most GPU memory allocated on ``device``, or on CPU the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def reset_peak(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or Linux's high-water mark of the resident set
    (so what data preparation used before training does not count as training's)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # 5 resets VmHWM, which ru_maxrss reports
    except OSError:  # not Linux, or not allowed: the peak then covers the whole process
        pass


def current_resident_bytes() -> int:
    """What the process holds now (Linux); elsewhere its peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return peak_bytes(torch.device("cpu"))
