"""The command line: ``lmforge <subcommand>`` and the root shims (train.py, eval.py, ...) call in here."""
