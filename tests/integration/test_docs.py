"""The docs cannot drift from the code: every command they show composes or parses, every list of a
group's presets equals the files of conf/<group>/, and every relative link resolves.

Commands are the lines of ```bash blocks in README.md and docs/*.md (docs/extending.md's are checked by
tests/test_extending.py, after its walkthroughs have made the presets they use). Train, eval, generate,
prepare and sweep commands are composed with Hydra, as they would start (nothing runs); the other
subcommands are parsed by their own argument parsers; `make` targets must exist.
"""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from lmforge.cli import consolidate, export, merge, plot, summary
from lmforge.cli.main import COMMANDS
from lmforge.cli.sweep.cli import load_settings
from lmforge.cli.sweep.configs import compose_train
from lmforge.cli.train import unknown_preset
from tests.conftest import CONF, ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CHECKED = [page for page in PAGES if page.name != "extending.md"]
PARSERS = {"merge": merge, "export": export, "consolidate": consolidate, "plot": plot, "summary": summary}
HYDRA_APPS = {"train": "train", "eval": "eval", "generate": "generate", "prepare": "prepare"}
MAKE_TARGETS = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def bash_lines(page: Path) -> list[str]:
    """The commands of a page's ```bash blocks: continuation lines joined, comments and prompts kept
    out, ``a && b`` split."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            while tokens:
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                if tokens[:cut]:
                    lines.append(shlex.join(tokens[:cut]))
                tokens = tokens[cut + 1 :]
    return lines


def app_and_arguments(tokens: list[str]) -> tuple[str, list[str]] | None:
    """Which lmforge command a line runs and its arguments, or None for another program."""
    while tokens and (re.fullmatch(r"[A-Z_]+=\S*", tokens[0]) or tokens[0] == "time"):
        tokens = tokens[1:]  # OMP_NUM_THREADS=1 time python ...
    scripts = {"train.py": "train", "eval.py": "eval", "generate.py": "generate", "sweep.py": "sweep"}
    for index, token in enumerate(tokens):
        if token in scripts and index > 0 and tokens[0] in ("python", "torchrun"):
            return scripts[token], tokens[index + 1 :]
    if tokens[:1] == ["lmforge"] and len(tokens) > 1:
        return tokens[1], tokens[2:]
    if tokens[:3] == ["python", "-m", "lmforge"]:
        return tokens[3], tokens[4:]
    if tokens[:1] == ["make"]:
        return "make", tokens[1:]
    return None


def combinations(overrides: list[str]) -> list[list[str]]:
    """A multirun's overrides as the jobs it starts (each sweep value at least once, at most 12 jobs)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    options = []
    for arg, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            key = override.get_key_element()
            options.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            options.append([arg])
    jobs = list(itertools.product(*options))
    return [list(job) for job in (jobs if len(jobs) <= 12 else jobs[:: len(jobs) // 12])]


def compose_app(config_name: str, overrides: list[str]) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        compose(config_name, overrides=overrides, return_hydra_config=True)


def check(line: str) -> None:
    found = app_and_arguments(shlex.split(line))
    if found is None:
        return
    app, args = found
    if app in ("-h", "--help", "help") or {"-h", "--help"} & set(args):
        return  # help: nothing to compose
    if app == "make":
        target = args[0] if args else "help"
        assert target in MAKE_TARGETS, f"make {target} is not a target of the Makefile"
        values = [a.split("=", 1)[1] for a in args[1:] if a.startswith("ARGS=")]
        if target == "train" and values:
            check(f"python train.py {values[0]}")
        return
    assert app in COMMANDS, f"{app} is not a subcommand of lmforge"
    args = [a for a in args if a not in ("-m", "--multirun")]
    if "--cfg" in args:
        args = [a for i, a in enumerate(args) if a != "--cfg" and (i == 0 or args[i - 1] != "--cfg")]
    if app in PARSERS:
        PARSERS[app].parser().parse_args(args)
    elif app == "sweep":
        settings, train_overrides = load_settings(args)
        assert settings.n_trials >= 1
        compose_train(train_overrides)
    else:
        if app == "train":
            assert unknown_preset(args) is None, unknown_preset(args)
        for job in combinations(args):
            compose_app(HYDRA_APPS[app], job)


@pytest.mark.parametrize("page", CHECKED, ids=lambda page: page.name)
def test_every_command_of_a_page_composes_or_parses(page):
    lines = bash_lines(page)
    for line in lines:
        try:
            check(line)
        except Exception as error:
            pytest.fail(f"{page.name}: `{line}`: {type(error).__name__}: {error}")


def presets(group: str) -> set[str]:
    return {path.stem for path in (CONF / group).glob("*.yaml")}


def test_the_configuration_page_lists_every_preset_of_every_group():
    text = (ROOT / "docs" / "configuration.md").read_text()
    table = text.split("## Groups and their presets", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([\w/]+)` \| (.*?) \|", table, re.MULTILINE)
    groups = {path.name for path in CONF.iterdir() if path.is_dir()}
    assert {group for group, _ in rows} == groups
    for group, choices in rows:
        assert set(re.findall(r"`([\w.-]+)`", choices)) == presets(group), group


def test_train_yaml_names_every_preset_of_its_groups():
    for group, comment in re.findall(
        r"^  - (\w+): \S+ +# conf/\1/: (.*)$", (CONF / "train.yaml").read_text(), re.M
    ):
        named = re.sub(r"\((?!bases)[^)]*\)", "", comment).replace("(bases:", "|").replace(")", "")
        listed = {name.strip() for name in named.split("|")} - {""}
        assert listed == presets(group), group


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name} links to {target}: no such heading"
