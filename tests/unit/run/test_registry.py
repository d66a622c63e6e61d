"""The objective registry hands each objective's settings to its DataModule: the masking ratios of every
masked-LM preset (conf/objective/) and of the command line reach the collator that masks the batches."""

import pytest
from omegaconf import OmegaConf

from lmforge.run.spec import resolve
from tests.conftest import CONF

MASKING = ("mlm_probability", "mask_token_ratio", "random_token_ratio")
MASKED_LM = [
    path.stem for path in sorted((CONF / "objective").glob("*.yaml")) if "mlm_probability" in path.read_text()
]


def collator_ratios(make_cfg, *overrides: str) -> tuple[dict[str, float], dict]:
    cfg = make_cfg(*overrides)
    datamodule = resolve(cfg).data.build()
    datamodule.prepare_data()
    datamodule.setup()
    return {name: getattr(datamodule.collator, name) for name in MASKING}, cfg


@pytest.mark.parametrize("preset", MASKED_LM)
def test_the_masking_ratios_of_each_masked_lm_preset_reach_the_collator(preset, make_cfg):
    ratios, cfg = collator_ratios(make_cfg, f"objective={preset}")
    shipped = OmegaConf.load(CONF / "objective" / f"{preset}.yaml")
    assert (
        ratios == {name: shipped[name] for name in MASKING} == {name: cfg.objective[name] for name in MASKING}
    )


def test_ratios_given_on_the_command_line_reach_the_collator(make_cfg):
    given = {"mlm_probability": 0.3, "mask_token_ratio": 0.5, "random_token_ratio": 0.25}
    ratios, _ = collator_ratios(make_cfg, *(f"objective.{name}={value}" for name, value in given.items()))
    assert ratios == given


def test_the_masked_lm_presets_are_found():
    assert set(MASKED_LM) >= {"mlm", "mlm_nsp"}
