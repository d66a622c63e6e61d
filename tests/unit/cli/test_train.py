"""The training command line's own check: an unknown preset is named with the presets of its group."""

from pathlib import Path

from lmforge.cli.train import CONFIG_DIR, unknown_preset


def test_an_unknown_preset_is_named_with_the_presets_of_its_group():
    conf = Path(CONFIG_DIR)
    assert unknown_preset(["model=bert_tiny", "peft=lora", "trainer.max_steps=3"]) is None
    assert unknown_preset(["+model=bert_huge", "~logger", "hydra/launcher=x", "model=null"]) is None
    problem = unknown_preset(["-m", "model=bert_tiny,bert_huge"], conf)
    assert problem is not None and problem.startswith("model=bert_huge is not a preset; choose one of ")
    assert "bert_base, bert_large" in problem and problem.endswith("(conf/model/)")
