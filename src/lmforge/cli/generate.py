"""Generation entry point: ``python generate.py ckpt_path=... prompt="..."``.

Decoder checkpoints continue each prompt (KV cache, greedy or sampled, batched with left padding);
encoder checkpoints print the most likely tokens for each [MASK] of the prompt. An instruction-tuned
checkpoint (objective=sft) puts each prompt in its template first (``prompt_format``) and answers it.
"""

from __future__ import annotations

import logging
import warnings

import hydra
import torch
from omegaconf import DictConfig

from lmforge.cli.errors import exit_on_config_error
from lmforge.errors import ConfigError
from lmforge.io.tokenizers import end_of_text_id
from lmforge.models.decoding import SamplingSettings, fill_mask, generate
from lmforge.run.config import CONFIG_DIR
from lmforge.run.load import load_task

warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
log = logging.getLogger("lmforge.cli.generate")
PROMPT_FORMATS = ("auto", "raw", "sft")


def formatted(prompts: list[str], prompt_format: str, task, ckpt_path: str) -> list[str]:
    """The prompts as the model reads them: as given (``raw``), or in an instruction-tuned checkpoint's
    template (``sft``; ``auto`` picks it for objective=sft checkpoints)."""
    if prompt_format not in PROMPT_FORMATS:
        raise ConfigError(
            "prompt_format", f"prompt_format={prompt_format} is not one of {', '.join(PROMPT_FORMATS)}"
        )
    template = getattr(task.objective, "prompt_text", None)
    if prompt_format == "raw" or (prompt_format == "auto" and template is None):
        return prompts
    if template is None:
        raise ConfigError(
            "prompt_format",
            f"prompt_format=sft needs a checkpoint of an objective=sft run (it holds the template); "
            f"{ckpt_path} was trained with objective.kind={task.objective.kind}: use prompt_format=raw",
        )
    return [template(prompt) for prompt in prompts]


def run(cfg: DictConfig) -> list[str]:
    """Generate for every prompt of ``cfg``; returns the printed blocks."""
    prompts = ([cfg.prompt] if cfg.prompt is not None else []) + list(cfg.prompts)
    if not prompts:
        raise ConfigError("prompt", 'no prompt: give prompt="..." or prompts=["...","..."]')
    try:
        settings = SamplingSettings(cfg.sample, cfg.temperature, cfg.top_k, cfg.top_p)
    except ValueError as error:
        raise ConfigError("sample", str(error)) from None
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if cfg.device == "auto" else cfg.device)
    task, tokenizer, checkpoint = load_task(cfg.ckpt_path, device)
    kind = checkpoint["hyper_parameters"]["objective"]["kind"]
    if kind == "classify":
        raise ConfigError(
            "ckpt_path", f"{cfg.ckpt_path} is a classifier: score it with python eval.py ckpt_path=..."
        )
    blocks = []
    if getattr(task, "mlm_head", None) is not None:  # BERT pretraining, or prompt-based on BERT
        for prompt in prompts:
            try:
                candidates = fill_mask(task, tokenizer, prompt, cfg.fill_top_k)
            except ValueError as error:
                raise ConfigError("prompt", f"{error}: an encoder checkpoint fills [MASK] tokens") from None
            lines = [prompt]
            for number, options in enumerate(candidates, start=1):
                shown = ", ".join(f"{token} ({p:.3f})" for token, p in options)
                lines.append(f"  [MASK] {number}: {shown}")
            blocks.append("\n".join(lines))
        return blocks

    prompts = formatted(prompts, cfg.get("prompt_format", "auto"), task, cfg.ckpt_path)
    eot = end_of_text_id(tokenizer, cfg.ckpt_path)
    encoded = [tokenizer.encode(p, add_special_tokens=False).ids for p in prompts]
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    context = task.backbone.config.max_seq_len
    room = context - max(len(ids) for ids in encoded)
    if room < 1:
        raise ConfigError(
            "prompt", f"the longest prompt fills the model's context of {context} tokens: shorten it"
        )
    if cfg.max_new_tokens > room:
        log.warning(
            "max_new_tokens=%d -> %d: the model's context is %d tokens", cfg.max_new_tokens, room, context
        )
    try:
        outputs = generate(
            task.backbone,
            encoded,
            min(cfg.max_new_tokens, room),
            settings,
            eos_id=eot if cfg.stop_at_eot else None,
            pad_id=eot if eot is not None else 0,
            use_cache=cfg.use_cache,
            generator=generator,
        )
    except ValueError as error:
        raise ConfigError("max_new_tokens", str(error)) from None
    return [prompt + tokenizer.decode(new) for prompt, new in zip(prompts, outputs, strict=True)]


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="generate")
def main(cfg: DictConfig) -> None:
    blocks = exit_on_config_error(lambda: run(cfg))
    print("\n\n".join(blocks))


if __name__ == "__main__":
    main()
