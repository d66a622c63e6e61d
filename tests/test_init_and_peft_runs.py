"""Starting from a checkpoint (model.init_from), tuning methods inside real runs, method checkpoints."""

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmforge.cli.merge import main as merge_main
from lmforge.cli.train import train
from lmforge.errors import ConfigError
from lmforge.run.checks import build
from lmforge.run.load import load_task
from lmforge.run.spec import resolve

from .conftest import SHORT


def test_bert_base_with_prefix_composes_and_builds(make_cfg):
    cfg = make_cfg("model=bert_base", "peft=prefix", tiny=False)
    assert cfg.peft.method == "prefix" and cfg.model.d_model == 768
    assert build(cfg.model).n_layers == 12


def test_prefix_tuning_runs_a_fast_dev_run_and_warns_about_the_random_backbone(make_cfg, caplog):
    with caplog.at_level(logging.WARNING, logger="lmforge.tasks"):
        assert train(make_cfg("peft=prefix", "debug=fdr")) is not None
    assert "freezes a backbone that was never trained" in caplog.text


def test_a_method_checkpoint_holds_only_trained_tensors_and_reloads_onto_its_base(make_cfg, pretrained_bert):
    cfg = make_cfg("peft=lora", f"model.init_from={pretrained_bert}", *SHORT)
    train(cfg)
    run = Path(cfg.paths.output_dir)
    ckpt = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)
    names = set(saved["state_dict"])
    assert names and all(".lora." in n or n.startswith(("mlm_head.", "nsp_head.")) for n in names), names
    assert saved["peft"] == {"method": "lora", "base": str(pretrained_bert)}
    task, _, _ = load_task(str(ckpt))
    base = torch.load(pretrained_bert, weights_only=False)["state_dict"]
    # the frozen backbone comes back from the base checkpoint, the LoRA tensors from this one
    assert torch.equal(
        task.state_dict()["backbone.embeddings.tokens.weight"], base["backbone.embeddings.tokens.weight"]
    )
    assert torch.equal(
        task.state_dict()["backbone.blocks.0.attention.qkv.lora.q.b"],
        saved["state_dict"]["backbone.blocks.0.attention.qkv.lora.q.b"],
    )
    method_files = load_file(run / "peft" / "adapter_model.safetensors")
    assert set(method_files) == names
    assert json.loads((run / "peft" / "adapter_config.json").read_text())["base"] == str(pretrained_bert)


def test_merge_writes_a_plain_model_with_the_same_outputs(make_cfg, pretrained_bert, tmp_path):
    cfg = make_cfg("peft=lora", f"model.init_from={pretrained_bert}", *SHORT)
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    merge_main([str(ckpt), "--out", str(tmp_path / "merged")])
    tuned, _, _ = load_task(str(ckpt))
    plain, _, _ = load_task(str(tmp_path / "merged" / "merged.ckpt"))
    assert plain.method.name == "none" and not any(".lora." in n for n in plain.state_dict())
    ids = torch.randint(5, 300, (2, 12))
    torch.testing.assert_close(plain(ids), tuned(ids), atol=1e-5, rtol=1e-5)
    assert set(load_file(tmp_path / "merged" / "model.safetensors")) == set(plain.state_dict())


def test_merge_refuses_a_method_that_cannot_be_folded(make_cfg, pretrained_bert, capsys):
    cfg = make_cfg("peft=prefix", f"model.init_from={pretrained_bert}", *SHORT)
    train(cfg)
    with pytest.raises(SystemExit) as stop:
        merge_main([str(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"), "--out", "unused"])
    assert stop.value.code == 2 and "cannot be folded" in capsys.readouterr().err


def test_init_from_a_model_of_another_shape_is_refused_before_training(make_cfg, pretrained_bert):
    cfg = make_cfg("model.d_model=64", f"model.init_from={pretrained_bert}", *SHORT)
    with pytest.raises(ConfigError, match="d_model=64 \\(checkpoint: 32\\)"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_init_strict_false_loads_what_fits_and_says_what_it_skipped(make_cfg, pretrained_bert, caplog):
    cfg = make_cfg(
        "model.n_layers=2", f"model.init_from={pretrained_bert}", "model.init_strict=false", "debug=fdr"
    )
    with caplog.at_level(logging.WARNING, logger="lmforge.io.init_from"):
        train(cfg)
    assert "backbone.blocks.1." in caplog.text and "not loaded" in caplog.text


def test_init_from_a_missing_file_names_the_key(make_cfg):
    with pytest.raises(ConfigError, match=r"model\.init_from=nowhere\.ckpt is not a file"):
        resolve(make_cfg("model.init_from=nowhere.ckpt"))


def test_a_method_that_trains_nothing_is_refused(make_cfg):
    # gpt_tiny ties its LM head to the token embedding: a linear probe would train nothing
    cfg = make_cfg("model=gpt_tiny", "model.d_model=32", "model.n_heads=2", "peft=frozen", "debug=fdr")
    with pytest.raises(ConfigError, match="leaves nothing to train"):
        train(cfg)
