"""``make mutate`` (scripts/mutate.py) is not run in CI, so its list is checked here: each mutation's
old text is in its file exactly once and the tests it names exist; a stale one is refused in one line."""

from __future__ import annotations

import ast
import importlib.util
import sys

import pytest

from tests.conftest import ROOT


def load_mutate():
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


mutate = load_mutate()


def test_mutation_names_are_distinct():
    names = [m.name for m in mutate.MUTATIONS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("mutation", mutate.MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_changes_its_file_once_and_names_tests_that_exist(mutation):
    text = (ROOT / mutation.file).read_text()
    assert text.count(mutation.old) == 1 and mutation.old != mutation.new
    ast.parse(text.replace(mutation.old, mutation.new))  # a bug to catch, not a syntax error
    for target in mutate.test_paths(mutation.tests):
        path, _, name = target.partition("::")
        assert (ROOT / path).is_file(), target
        functions = {n.name for n in ast.walk(ast.parse((ROOT / path).read_text())) if hasattr(n, "name")}
        assert not name or name in functions, target


def test_a_mutation_whose_text_is_gone_is_refused_in_one_line():
    stale = mutate.Mutation("stale", "src/lmforge/models/rotary.py", "no such line", "", ())
    with pytest.raises(SystemExit) as refused:
        mutate.refuse_stale([stale])
    message = str(refused.value.code)
    assert "stale" in message and "0 times" in message and "\n" not in message
