"""Fine-tuning in real runs: a classifier from a pretraining checkpoint, on BERT and decoders, with a
tuning method, resumed, scored by eval.py; method checkpoints, merging, model.init_from."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from lmforge.cli.eval import evaluate
from lmforge.cli.merge import main as merge_main
from lmforge.cli.train import train
from lmforge.run.build import prepare_data
from lmforge.run.load import load_task
from lmforge.run.spec import resolve
from lmforge.tasks import SequenceClassification
from tests.conftest import FIXTURES, SHORT, TOPICS_RUN, metrics, run_cli

# The tiny BERT of conftest.TINY (so a checkpoint of it loads), on the topics fixture.
CLASSIFY = [
    "model.d_model=32",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.n_layers=1",
    "model.max_seq_len=64",
    *TOPICS_RUN,
    "data.tokenizer.vocab_size=300",
    "trainer.max_steps=8",
    "trainer.val_check_interval=4",
]
# 120 sentences, cooking or travel, each told by its verb and its place: learnable in a few dozen steps.
CHORES = FIXTURES / "labeled" / "files" / "chores.csv"


def test_a_bert_fine_tunes_from_a_pretraining_checkpoint_and_eval_scores_it(
    make_cfg, pretrained_bert, tmp_path
):
    cfg = make_cfg(*CLASSIFY, f"model.init_from={pretrained_bert}", "peft=lora", tiny=False)
    assert cfg.objective.kind == "classify"
    assert train(cfg) is not None
    run = Path(cfg.paths.output_dir)
    result = json.loads((run / "result.json").read_text())
    assert result["metric"] == "val/acc" and result["trainable_pct"] < 50
    assert result["best"] == pytest.approx(max(row["val/acc"] for row in metrics(run) if "val/acc" in row))

    ckpt = run / "checkpoints" / "last.ckpt"
    (best,) = (run / "checkpoints").glob("step*.ckpt")  # named after the metric that chose it
    assert best.name.startswith("step") and "-val_acc" in best.name and "val_loss" not in best.name
    task, tokenizer, _ = load_task(str(ckpt))
    assert task.label_names == ["cooking", "travel"]
    pretraining = torch.load(pretrained_bert, weights_only=False)
    base = pretraining["state_dict"]
    # the classifier's pooler starts from the NSP head's (a head: it trains on from there)
    fresh = SequenceClassification(**torch.load(ckpt, weights_only=False)["hyper_parameters"])
    assert torch.equal(fresh.pooler.weight, base["nsp_head.pooler.weight"])
    assert not torch.equal(task.pooler.weight, base["nsp_head.pooler.weight"])
    assert tokenizer.to_str() == pretraining["MaskedLMDataModule"]["tokenizer"]  # pretraining's own

    scored = run_cli(
        "eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/eval", "trainer.enable_progress_bar=false"
    )
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "test/acc" in scored.stdout and "test/macro_f1" in scored.stdout
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["split"] == "test" and f"{report['metrics']['test/acc']:.4f}" in scored.stdout


def test_a_classifier_beats_the_majority_class_on_its_held_out_test_split(make_cfg, tmp_path):
    """60 steps from scratch (about 1 s): every seed tried scored 1.0 on the 30 test sentences."""
    cfg = make_cfg(
        *CLASSIFY,
        f"data.source.path={CHORES}",
        "optim.lr=3e-3",
        "trainer.max_steps=60",
        "trainer.val_check_interval=30",
        tiny=False,
    )
    train(cfg)
    labels = prepare_data(resolve(cfg)).dataset("test").labels
    majority = np.bincount(labels).max() / len(labels)
    scoring = {
        "split": "test",
        "ckpt_path": str(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"),
        "data": {},
        "paths": {"output_dir": str(tmp_path / "eval")},
        "trainer": {
            "_target_": "lightning.pytorch.Trainer",
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
        },
    }
    accuracy = evaluate(OmegaConf.create(scoring))["test/acc"]
    assert len(labels) == 30 and accuracy >= majority + 0.3, (accuracy, majority)


def test_a_classification_run_resumes_with_its_labels_and_tokenizer(make_cfg):
    first = make_cfg(*CLASSIFY, tiny=False)
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    again = make_cfg(*CLASSIFY, f"ckpt_path={last}", "trainer.max_steps=12", tiny=False)
    train(again)
    assert (
        torch.load(Path(again.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)[
            "global_step"
        ]
        == 12
    )


@pytest.mark.parametrize("model", ["gpt_tiny", "llama_tiny"])
def test_decoders_fine_tune_with_a_method(make_cfg, model):
    cfg = make_cfg(
        *CLASSIFY, f"model={model}", "model.d_model=32", "model.n_heads=2", "peft=prefix", tiny=False
    )
    assert resolve(cfg).data.settings["tokenizer"]["kind"] == "bpe" and cfg.objective.kind == "classify"
    train(cfg)
    assert json.loads((Path(cfg.paths.output_dir) / "result.json").read_text())["status"] == "finished"


def test_eval_without_a_checkpoint_says_so(tmp_path):
    result = run_cli("eval.py", f"ckpt_path={tmp_path}/none.ckpt", f"hydra.run.dir={tmp_path}/eval")
    assert result.returncode == 2 and "is not a file" in result.stderr


def test_eval_scores_a_pretraining_checkpoint_on_validation_only(pretrained_bert, tmp_path):
    refused = run_cli("eval.py", f"ckpt_path={pretrained_bert}", f"hydra.run.dir={tmp_path}/test")
    assert refused.returncode == 2 and "use split=val" in refused.stderr
    scored = run_cli("eval.py", f"ckpt_path={pretrained_bert}", "split=val", f"hydra.run.dir={tmp_path}/val")
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "val/mlm_loss" in json.loads((tmp_path / "val" / "metrics.json").read_text())["metrics"]


def test_a_fine_tuned_classifier_of_as_many_labels_starts_the_next_one(make_cfg):
    first = make_cfg(*CLASSIFY, tiny=False)
    train(first)
    ckpt = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)
    model = {**saved["hyper_parameters"]["model"], "init_from": str(ckpt)}
    settings = {**saved["hyper_parameters"], "model": model}
    again = SequenceClassification(**settings)
    assert torch.equal(again.classifier.weight, saved["state_dict"]["classifier.weight"])
    assert torch.equal(again.pooler.weight, saved["state_dict"]["pooler.weight"])
    # three labels instead of two: the classifier starts fresh, the rest still loads
    other = SequenceClassification(**{**settings, "label_names": ["a", "b", "c"]})
    assert other.classifier.weight.shape[0] == 3
    assert torch.equal(other.pooler.weight, saved["state_dict"]["pooler.weight"])


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


def test_init_strict_false_loads_what_fits_and_says_what_it_skipped(make_cfg, pretrained_bert, caplog):
    cfg = make_cfg(
        "model.n_layers=2", f"model.init_from={pretrained_bert}", "model.init_strict=false", "debug=fdr"
    )
    with caplog.at_level(logging.WARNING, logger="lmforge.io.init_from"):
        train(cfg)
    assert "backbone.blocks.1." in caplog.text and "not loaded" in caplog.text
