"""One of our models as a Hugging Face folder (``lmforge export <ckpt> --out DIR``).

Writes ``config.json`` (HF field names and ``architectures``), ``model.safetensors`` and
``tokenizer.json``; ``transformers``' ``from_pretrained(DIR)`` and our ``model.init_from=hf:DIR`` both
read it back. A checkpoint tuned with a foldable method (LoRA, IA3, bitfit, ...) is merged first;
methods that add modules HF models lack (adapters, prompts, prefixes) are refused.

What is written per task: BERT pretraining -> ``BertForPreTraining`` (MLM + NSP) or
``BertForMaskedLM``; BERT classification -> ``BertForSequenceClassification`` (pooler, classifier,
label names); GPT-2 / LLaMA -> ``GPT2LMHeadModel`` / ``LlamaForCausalLM`` (a decoder's classifier has
no HF counterpart with a bias: it is left out, and the export says so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from lmforge.errors import ConfigError
from lmforge.io.hf import family_for_config
from lmforge.io.hf.mapping import export_state
from lmforge.io.tokenizers import end_of_text_token
from lmforge.peft import merged_state_dict


def task_state(task: Any, family_name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The task's tensors with its tuning method folded in, named as the HF mapping expects, and the
    parts that are left out (said in the CLI's output)."""
    try:
        state = merged_state_dict(task, task.method)
    except ValueError as error:
        raise ConfigError(
            "peft.method",
            f"{error}: a Hugging Face model has no place for its modules, so it cannot be exported",
        ) from None
    # a BERT classifier's pooler is the pretrained NSP pooler (BertForSequenceClassification's bert.pooler);
    # the task's own buffers (tokens_seen) are bookkeeping, not weights
    state = {("nsp_head." + k if k.startswith("pooler.") else k): v for k, v in state.items() if "." in k}
    left_out = []
    if family_name != "BERT" and any(k.startswith("classifier.") for k in state):
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        left_out.append("the classifier (a decoder's classification head has no Hugging Face counterpart)")
    return state, left_out


def hf_config(task: Any, family: Any, heads: set[str], tokenizer: Tokenizer) -> dict[str, Any]:
    config = {"architectures": [family.architecture(heads)], **family.config_to_hf(task.config, heads)}
    config["dtype"] = "float32"
    if "classifier" in heads:
        names = list(task.label_names)
        config.update(
            num_labels=len(names),
            id2label={str(i): name for i, name in enumerate(names)},
            label2id={name: i for i, name in enumerate(names)},
        )
    token = end_of_text_token(tokenizer)
    end = tokenizer.token_to_id(token) if token is not None else None
    if family.name != "BERT" and end is not None:  # GPT-2's convention: one token begins and ends texts
        config.update(bos_token_id=end, eos_token_id=end)
    return config


def export_task(task: Any, tokenizer: Tokenizer, out: Path) -> list[str]:
    """Write ``task``'s model (a task of ours, for inference) and ``tokenizer`` to ``out`` in Hugging
    Face's layout; returns the parts left out (a decoder's classifier)."""
    family = family_for_config(task.config)
    state, left_out = task_state(task, family.name)
    heads = {name.split(".", 1)[0] for name in state} - {"backbone"}
    with_prefix = family.architecture(heads) != "BertModel"
    tensors = export_state(family, task.config, state, with_prefix)
    config = hf_config(task, family, heads, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer.save(str(out / "tokenizer.json"))
    return left_out
