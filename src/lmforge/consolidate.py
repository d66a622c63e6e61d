"""One file from a distributed (strategy=fsdp) checkpoint folder, for single-process use.

    python -m lmforge.consolidate logs/pretrain/runs/<run>/checkpoints/last.ckpt --out model.safetensors
    python -m lmforge.consolidate logs/pretrain/runs/<run>/checkpoints/last.ckpt --out model.ckpt

``.safetensors``: the task's weights (backbone and heads), with the run's hyper-parameters as JSON in
the file's metadata (``hyper_parameters``). ``.ckpt``: a Lightning checkpoint like the one a
single-process run writes, without the optimizer state: ``generate.py``, ``eval.py`` and
``model.init_from`` read it. The folder itself is read by those too, and resumes a run with
``ckpt_path=<folder>`` under strategy=fsdp (optimizer state included).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from lmforge.checkpoints import is_distributed_checkpoint, read_distributed_checkpoint

FORMATS = (".safetensors", ".ckpt")


def consolidate(folder: str | Path, out: str | Path) -> Path:
    """Gather the shards of ``folder`` into ``out`` (its suffix picks the format); returns ``out``."""
    folder, out = Path(folder), Path(out)
    if not is_distributed_checkpoint(folder):
        raise SystemExit(f"error: {folder} is not a distributed checkpoint folder (it holds no meta.pt)")
    if out.suffix not in FORMATS:
        raise SystemExit(f"error: --out {out} must end in {' or '.join(FORMATS)}")
    checkpoint = read_distributed_checkpoint(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".ckpt":
        torch.save(checkpoint, out)
        return out
    # safetensors stores no shared or strided storage: tied weights become two plain copies
    weights = {
        name: tensor.detach().contiguous().clone() for name, tensor in checkpoint["state_dict"].items()
    }
    metadata = {"hyper_parameters": json.dumps(checkpoint.get("hyper_parameters", {}), default=str)}
    save_file(weights, str(out), metadata=metadata)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmforge.consolidate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "folder", help="a distributed checkpoint folder (…/checkpoints/last.ckpt under strategy=fsdp)"
    )
    parser.add_argument("--out", required=True, help="model.safetensors (weights) or model.ckpt (Lightning)")
    args = parser.parse_args(argv)
    print(f"wrote {consolidate(args.folder, args.out)}")


if __name__ == "__main__":
    main()
