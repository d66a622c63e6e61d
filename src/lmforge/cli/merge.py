"""``lmforge merge <ckpt> [--out DIR]``: fold a tuning method into a plain model.

For methods whose change folds into the base weights (LoRA, IA3; and trivially none, frozen, bitfit)
the result is a model without any method module, computing what the tuned one computes:

- ``model.safetensors``: every tensor of the task (backbone and heads) with the method folded in;
- ``config.json``: the task's settings with ``peft=none`` and no ``init_from`` (the weights are here);
- ``tokenizer.json``;
- ``merged.ckpt``: the same as a checkpoint of ours, so ``eval.py``, ``generate.py`` and
  ``model.init_from`` take it as they take any other.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from lmforge.cli.errors import exit_on_config_error
from lmforge.errors import ConfigError
from lmforge.peft import merged_state_dict
from lmforge.run.load import load_task


def plain_settings(hparams: dict[str, Any]) -> dict[str, Any]:
    """The task's hyper-parameters for the merged model: no method, weights of its own."""
    settings = {key: value for key, value in hparams.items() if key != "tokenizer"}
    settings["peft"] = {"method": "none", "lr": None}
    settings["model"] = {**settings["model"], "init_from": None}
    return settings


def merge(ckpt_path: str, out: Path) -> Path:
    task, tokenizer, checkpoint = load_task(ckpt_path)
    try:
        state = merged_state_dict(task, task.method)
    except ValueError as error:
        raise ConfigError("peft.method", f"{error}; keep using {ckpt_path} with its base weights") from None
    out.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().clone() for name, tensor in state.items()}
    save_file(state, out / "model.safetensors", metadata={"merged_from": task.method.name})
    settings = plain_settings(checkpoint["hyper_parameters"])
    (out / "config.json").write_text(json.dumps(settings, indent=2, default=str) + "\n")
    tokenizer.save(str(out / "tokenizer.json"))
    merged = {
        key: value
        for key, value in checkpoint.items()
        if key not in ("state_dict", "optimizer_states", "lr_schedulers", "callbacks", "loops")
    }
    merged.update(state_dict=state, hyper_parameters=settings, peft={"method": "none", "base": None})
    torch.save(merged, out / "merged.ckpt")
    return out


def parser(prog: str = "lmforge merge") -> argparse.ArgumentParser:
    """The command's arguments (the docs check their commands against it)."""
    arguments = argparse.ArgumentParser(
        prog=prog, description="Fold a LoRA or IA3 checkpoint into a plain model."
    )
    arguments.add_argument("ckpt_path", help="a checkpoint written by train.py with peft=lora or peft=ia3")
    arguments.add_argument("--out", type=Path, help="folder to write (default: <checkpoint folder>/merged)")
    return arguments


def main(argv: Sequence[str] | None = None, prog: str = "lmforge merge") -> None:
    args = parser(prog).parse_args(argv)
    out = args.out or Path(args.ckpt_path).resolve().parent / "merged"
    written = exit_on_config_error(lambda: merge(args.ckpt_path, out))
    print(f"wrote {written}/model.safetensors, config.json, tokenizer.json and merged.ckpt")


if __name__ == "__main__":
    main()
