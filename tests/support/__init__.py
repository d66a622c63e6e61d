"""Test-only code both layers share (fixtures live in tests/conftest.py): reference models, sweep
helpers, callbacks for ``python train.py`` runs."""
