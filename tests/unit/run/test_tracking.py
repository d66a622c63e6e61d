"""What a run records for tracking never holds a secret. (W&B offline in a real run:
tests/integration/test_run_options.py.)"""

from lmforge.run.tracking import without_secrets


def test_secrets_are_dropped_at_any_depth():
    config = {"a": 1, "api_key": "k", "nested": {"hf_token": "t", "keep": [{"password": "p", "b": 2}]}}
    assert without_secrets(config) == {"a": 1, "nested": {"keep": [{"b": 2}]}}
    settings = {
        "tokenizer": {"vocab_size": 8},
        "max_new_tokens": 4,
        "shard_tokens": 9,
        "token": "t",
        "SECRET": "s",
    }
    assert without_secrets(settings) == {
        "tokenizer": {"vocab_size": 8},
        "max_new_tokens": 4,
        "shard_tokens": 9,
    }
