"""docs/extending.md, performed: each walkthrough's code blocks, taken from the page as written, make a
model family, a labeled dataset, a tuning method and an objective that then train.

A block after a line "`<path>`:" is a new file; a block after "Add to `<path>`" goes into an existing
module: here it runs in that module's namespace and what it defines or registers is patched in for the
test only. New presets go into a folder on Hydra's search path instead of conf/.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lmforge.models
import lmforge.objectives.settings
import lmforge.peft
import lmforge.run.registry
import lmforge.tasks
from lmforge.cli.train import train
from lmforge.models import BACKBONES
from lmforge.peft import PEFT_METHODS
from lmforge.run.load import load_task
from lmforge.run.registry import OBJECTIVES
from tests.conftest import ROOT, TINY, compose_config

DOC = ROOT / "docs" / "extending.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def walkthrough_blocks() -> tuple[dict[str, str], dict[str, str]]:
    """The page's new files (path -> content) and additions (path -> code)."""
    text = DOC.read_text()
    files, additions, end = {}, {}, 0
    for match in BLOCK.finditer(text):
        before = text[end : match.start()].strip().splitlines()
        end = match.end()
        intro = " ".join(before[-3:]) if before else ""
        if before and re.fullmatch(r"`([^`]+)`:", before[-1].strip()):
            files[before[-1].strip()[1:-2]] = match.group(2)
        elif (added := re.search(r"Add to `([^`]+)`", intro)) is not None:
            additions[added.group(1)] = match.group(2)
    return files, additions


FILES, ADDITIONS = walkthrough_blocks()


def test_the_page_holds_every_file_and_addition_the_tests_perform():
    assert set(FILES) == {
        "src/lmforge/models/neox.py",
        "conf/model/neox_tiny.yaml",
        "datasets/my_reviews/prepare.py",
        "conf/data/my_reviews.yaml",
        "src/lmforge/peft/ln_tuning.py",
        "conf/peft/ln_tuning.yaml",
        "src/lmforge/tasks/replaced_token.py",
        "conf/objective/rtd.yaml",
    }
    assert set(ADDITIONS) == {
        "src/lmforge/models/__init__.py",
        "src/lmforge/peft/__init__.py",
        "src/lmforge/objectives/settings.py",
        "src/lmforge/run/registry.py",
    }


@pytest.fixture
def extended(tmp_path, monkeypatch):
    """Lay the page's presets into a search-path folder and its modules into lmforge, for this test."""
    conf = tmp_path / "conf"
    for path, content in FILES.items():
        if path.startswith("conf/"):
            (conf / path[len("conf/") :]).parent.mkdir(parents=True, exist_ok=True)
            (conf / path[len("conf/") :]).write_text(content)

    def install(path: str) -> types.ModuleType:
        """The page's src/lmforge/<...>.py as the module lmforge.<...>, importable by its name."""
        name = path[len("src/") : -len(".py")].replace("/", ".")
        file = tmp_path / "src" / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(FILES[path])
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        package, _, leaf = name.rpartition(".")
        monkeypatch.setattr(sys.modules[package], leaf, module, raising=False)
        return module

    def add(path: str, **names) -> dict:
        """Run the page's addition to ``path`` in that module's namespace (plus ``names``)."""
        module = sys.modules[path[len("src/") : -len(".py")].replace("/", ".").removesuffix(".__init__")]
        namespace = {**vars(module), **names}
        code = ADDITIONS[path]
        try:
            return {"value": eval(code, namespace), **namespace}
        except SyntaxError:
            exec(code, namespace)
            return namespace

    def cfg(*overrides: str, tiny: bool = True):
        searched = [f"hydra.searchpath=[file://{conf}]"]
        return compose_config([*searched, *(TINY if tiny else []), *overrides], tmp_path)

    return types.SimpleNamespace(install=install, add=add, cfg=cfg, tmp=tmp_path, monkeypatch=monkeypatch)


def test_a_new_model_family_trains_with_parallel_blocks(extended):
    neox = extended.install("src/lmforge/models/neox.py")
    registered = extended.add(
        "src/lmforge/models/__init__.py",
        BACKBONES=dict(BACKBONES),
        NeoXConfig=neox.NeoXConfig,
        NeoXModel=neox.NeoXModel,
    )["BACKBONES"]
    extended.monkeypatch.setitem(BACKBONES, neox.NeoXConfig, registered[neox.NeoXConfig])
    cfg = extended.cfg("model=neox_tiny", "model.n_layers=2")
    assert cfg.objective.kind == "clm"  # the preset chose the decoder objective
    train(cfg)
    task, _, _ = load_task(str(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"))
    block = task.backbone.blocks[0]
    assert type(task.backbone) is neox.NeoXModel and isinstance(block, neox.ParallelBlock)
    x = torch.randn(2, 5, 32)
    rotary = task.backbone.rotary(torch.arange(5)[None], x.dtype)
    with torch.no_grad():
        parallel = (
            x
            + block.attention(block.attention_norm(x), None, is_causal=True, rotary=rotary)
            + block.feed_forward(block.feed_forward_norm(x))
        )
        assert torch.allclose(block(x, None, is_causal=True, rotary=rotary), parallel, atol=1e-6)


REVIEWS = [  # rating <TAB> text: the raw format of the walkthrough's download
    *(f"5\tA wonderful film, the {w} was superb and moving." for w in ("acting", "music", "story", "cast")),
    *(f"4\tI enjoyed the {w}; a warm and clever evening." for w in ("plot", "score", "script", "ending")),
    *(f"1\tA dull mess, the {w} was tedious and flat." for w in ("acting", "music", "story", "cast")),
    *(f"2\tI disliked the {w}; a slow and empty evening." for w in ("plot", "score", "script", "ending")),
    *(
        f"{r}\tThe {w} was {a}, {b} from start to finish."
        for r, a, b in ((5, "bright", "lovely"), (1, "grim", "boring"))
        for w in ("scenery", "dialogue", "camera", "lighting", "editing", "pacing")
    ),
    "3\tIt was fine, nothing more.",
]


def test_a_new_labeled_dataset_is_prepared_and_trains(extended):
    datasets = extended.tmp / "datasets"
    shutil.copytree(ROOT / "datasets" / "formats", datasets / "formats")
    script = datasets / "my_reviews" / "prepare.py"
    script.parent.mkdir(parents=True)
    script.write_text(FILES["datasets/my_reviews/prepare.py"])
    raw = extended.tmp / "reviews.tsv"
    raw.write_text("\n".join(REVIEWS) + "\n")
    spec = importlib.util.spec_from_file_location("my_reviews_prepare", script)
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    out = extended.tmp / "data" / "finetune"
    assert prepare.run(prepare.main, ["--raw", str(raw), "--out", str(out)]) == 0
    folder = out / "my_reviews"
    rows = [
        json.loads(line) for split in ("train", "val", "test") for line in (folder / f"{split}.jsonl").open()
    ]
    assert len(rows) == len(REVIEWS) - 1 and {r["label"] for r in rows} == {"positive", "negative"}
    cfg = extended.cfg(
        "data=my_reviews",
        *(s for s in TINY if s.startswith(("model.", "trainer.", "callbacks."))),
        "data.tokenizer.vocab_size=200",
        "data.batch_size=4",
        "trainer.max_steps=3",
        tiny=False,
    )
    assert cfg.objective.kind == "classify"
    train(cfg)
    assert json.loads((Path(cfg.paths.output_dir) / "result.json").read_text())["status"] == "finished"


def test_a_new_tuning_method_trains_only_the_norms(extended):
    ln_tuning = extended.install("src/lmforge/peft/ln_tuning.py")
    methods = extended.add(
        "src/lmforge/peft/__init__.py", PEFT_METHODS=dict(PEFT_METHODS), LNTuning=ln_tuning.LNTuning
    )
    extended.monkeypatch.setitem(PEFT_METHODS, "ln_tuning", methods["PEFT_METHODS"]["ln_tuning"])
    cfg = extended.cfg("peft=ln_tuning", "trainer.max_steps=3", "trainer.val_check_interval=3")
    train(cfg)
    saved = load_file(Path(cfg.paths.output_dir) / "peft" / "adapter_model.safetensors")
    backbone = [name for name in saved if name.startswith("backbone.")]
    assert backbone and all("norm" in name for name in backbone), backbone
    assert {name.split(".")[0] for name in saved} == {"backbone", "mlm_head", "nsp_head"}  # and the heads


def test_a_new_objective_trains_and_its_checkpoint_reloads(extended):
    settings = extended.add("src/lmforge/objectives/settings.py")
    extended.monkeypatch.setattr(
        lmforge.objectives.settings, "ReplacedTokenSettings", settings["ReplacedTokenSettings"], raising=False
    )
    task_module = extended.install("src/lmforge/tasks/replaced_token.py")
    entry = extended.add(
        "src/lmforge/run/registry.py", ReplacedTokenDetection=task_module.ReplacedTokenDetection
    )["value"]
    extended.monkeypatch.setitem(OBJECTIVES, entry.kind, entry)
    cfg = extended.cfg("objective=rtd", "trainer.max_steps=4", "trainer.val_check_interval=2")
    train(cfg)
    task, _, _ = load_task(str(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"))
    assert type(task) is task_module.ReplacedTokenDetection and task.objective.random_token_ratio == 1.0
    metrics = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    assert "val/loss" in metrics
