"""The search space of a sweep: what a ``params`` entry becomes, and every mistake refused before a trial."""

from __future__ import annotations

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from lmforge.cli.sweep.configs import compose_sweep, compose_train, override_value, set_output_dir
from lmforge.cli.sweep.space import SearchParam, parse_search_space
from lmforge.errors import ConfigError
from tests.conftest import TINY


@pytest.fixture(scope="module")
def train_cfg(tmp_path_factory) -> DictConfig:
    """The train config a study's trials start from (composed once: the parser only reads it)."""
    tmp = tmp_path_factory.mktemp("space")
    return set_output_dir(compose_train([*TINY, f"paths.log_dir={tmp}"]), tmp / "run")


def parse(spec: dict, train_cfg: DictConfig) -> list[SearchParam]:
    return parse_search_space(OmegaConf.create(spec), train_cfg)


def test_each_type_of_entry_becomes_its_distribution(train_cfg):
    spec = {
        "optim.lr": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
        "optim.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05},
        "model.n_layers": {"type": "int", "low": 1, "high": 8, "step": 2},
        "model.d_ff": {"type": "int", "low": 32, "high": 256, "log": True, "step": 1},
        "model": {"type": "categorical", "choices": ["bert_tiny", "bert_mini"]},
        "data.batch_size": {"type": "categorical", "choices": [8, 16, None]},
    }
    assert parse(spec, train_cfg) == [
        SearchParam("optim.lr", "float", low=3e-4, high=1e-2, log=True),
        SearchParam("optim.warmup_ratio", "float", low=0.0, high=0.2, step=0.05),
        SearchParam("model.n_layers", "int", low=1, high=8, step=2),
        SearchParam("model.d_ff", "int", low=32, high=256, log=True, step=1),
        SearchParam("model", "categorical", choices=("bert_tiny", "bert_mini")),
        SearchParam("data.batch_size", "categorical", choices=(8, 16, None)),
    ]


def test_sampled_values_stay_inside_their_distribution(train_cfg):
    space = parse(
        {
            "optim.lr": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
            "model.n_layers": {"type": "int", "low": 1, "high": 7, "step": 2},
            "model": {"type": "categorical", "choices": ["bert_tiny", "bert_mini"]},
        },
        train_cfg,
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        lr, layers, model = (param.suggest(study.ask()) for param in space)
        assert 3e-4 <= lr <= 1e-2 and layers in (1, 3, 5, 7) and model in ("bert_tiny", "bert_mini")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"optim.lr": {"type": "uniform", "low": 0.1, "high": 1.0}}, "type='uniform' is not one of"),
        ({"optim.lr": {"type": ["float"], "low": 0.1, "high": 1.0}}, "type=['float'] is not one of"),
        ({"optim.lr": {"type": "float", "low": 1e-2, "high": 1e-3}}, "low=0.01 must be below high=0.001"),
        ({"optim.lr": {"type": "float", "low": 0.0, "high": 1e-3, "log": True}}, "log: true needs low > 0"),
        ({"optim.lr": {"type": "float", "low": 0.0, "hight": 1e-3}}, "hight is not a setting"),
        ({"optim.lr": {"type": "float", "high": 1e-3}}, "params.optim.lr.low must be a number"),
        ({"optim.lr": {"type": "float", "low": "small", "high": 1e-3}}, "optim.lr.low must be a number"),
        ({"optim.lr": {"type": "float", "low": 0.1, "high": 1.0, "log": "yes"}}, "log must be true or false"),
        (
            {"optim.lr": {"type": "float", "low": 0.0, "high": 1.0, "step": 0}},
            "step must be a positive number",
        ),
        ({"optim.lrr": {"type": "float", "low": 0.0, "high": 1.0}}, "optim.lrr is not a key of the train"),
        ({"model.n_layers": {"type": "float", "low": 1, "high": 4}}, "is an integer (1) in the train config"),
        ({"model.n_layers": {"type": "int", "low": 1, "high": 4.5}}, "high must be an integer"),
        ({"model.n_layers": {"type": "int", "low": 1, "high": 4, "step": 0.5}}, "a positive integer"),
        (
            {"model.n_layers": {"type": "int", "low": 1, "high": 4, "choices": [1]}},
            "choices is not a setting",
        ),
        ({"model.n_layers": {"type": "categorical", "choices": []}}, "choices must be a non-empty list"),
        ({"model.n_layers": {"type": "categorical", "choices": [1, [2]]}}, "list of numbers, strings"),
        ({"model.n_layers": {"type": "categorical", "low": 1, "choices": [1]}}, "low is not a setting"),
        ({"optim": {"type": "float", "low": 0.0, "high": 1.0}}, "optim is a config node, not a number"),
        ({"model": {"type": "int", "low": 1, "high": 2}}, "model is a config node, not a number"),
        ({"model": {"type": "categorical", "choices": ["bert_tiny", "bert_huge"]}}, "bert_huge not in"),
        ({"optim.lr": 0.001}, "must be a mapping with a type: float | int | categorical"),
        ({"optim.lr": {"low": 0.1, "high": 1.0}}, "must be a mapping with a type"),
        (
            {"model.n_layers": {"type": "int", "low": 1, "high": 8, "log": True, "step": 2}},
            "cannot be combined",
        ),
        (
            {"optim.lr": {"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}},
            "cannot be combined",
        ),
    ],
)
def test_a_bad_search_space_is_refused_before_any_trial(spec, words, train_cfg):
    with pytest.raises(ConfigError) as caught:
        parse(spec, train_cfg)
    assert words in str(caught.value)
    assert caught.value.key == f"params.{next(iter(spec))}"


def test_an_empty_search_space_names_the_shipped_ones(train_cfg):
    with pytest.raises(
        ConfigError, match=r"hparams_search=<name> \(conf/hparams_search/: lr_warmup, model_shape"
    ):
        parse_search_space(OmegaConf.create({}), train_cfg)


def test_the_shipped_search_spaces_are_valid(train_cfg):
    for name in ("lr_warmup", "model_shape"):
        space = parse_search_space(compose_sweep([f"hparams_search={name}"]).params, train_cfg)
        assert space and all(param.type in ("float", "int", "categorical") for param in space)


@pytest.mark.parametrize(
    "value", [1e-05, 0.1 + 0.2, 3, True, None, "bert_mini", "3", "null", "a:b/c.txt", "two words", "it's"]
)
def test_sampled_values_reach_hydra_unchanged(value):
    parsed = OverridesParser.create().parse_override(f"key={override_value(value)}")
    assert parsed.value() == value
