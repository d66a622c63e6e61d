"""Instruction tuning data: prompt/response pairs from JSON lines, their encoding with the loss on the
response alone, packing, and the ``InstructionDataModule``."""

from lmforge.data.sft.datamodule import InstructionDataModule
from lmforge.data.sft.pairs import InstructionFiles, InstructionPair

__all__ = ["InstructionDataModule", "InstructionFiles", "InstructionPair"]
