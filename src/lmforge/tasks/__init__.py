"""LightningModules: a backbone, the heads of an objective, their losses, metrics and optimiser."""

from lmforge.tasks.pretraining import BertPretraining

__all__ = ["BertPretraining"]
