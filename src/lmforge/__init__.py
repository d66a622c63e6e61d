"""lmforge: language models written from scratch, trained with Lightning, configured with Hydra."""

__version__ = "0.1.0"
