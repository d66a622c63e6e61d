"""The run spec: a composed config resolved into typed, checked settings before any work.

Every refusal the spec raises is a case of tests/integration/test_refusals.py (run through ``train``).
"""

from lmforge.run.spec import resolve
from lmforge.tasks import BertPretraining


def test_default_composition(make_cfg):
    cfg = make_cfg(tiny=False)
    assert cfg.model.d_model == 128 and cfg.model.n_layers == 2
    assert cfg.objective.nsp is True and cfg.objective.kind == "mlm"
    assert cfg.data.corpus._target_.endswith("StdlibCorpus")
    spec = resolve(cfg)  # the registry turns the objective into its task and DataModule
    assert spec.objective.task is BertPretraining and spec.objective_settings.nsp is True
    assert type(spec.data.build()).__name__ == "MaskedLMDataModule"
    assert spec.data.settings["tokenizer"]["kind"] == "wordpiece"
