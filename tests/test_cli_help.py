"""Help generated from what the algorithms declare (issue 21, item 5): every setting
with its default, no Sphinx markup, the algorithms listed without importing them."""

from __future__ import annotations

import inspect
import re

import pytest
from click.testing import CliRunner

from onepass.algorithms import PACKAGES
from onepass.cli import main
from onepass.state import get_algorithm
from onepass.training import state_parameters


def help_of(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_train_help_gives_every_hyperparameter_its_default(name: str) -> None:
    text = help_of("train", name)
    assert not re.search(r":\w+:`|``", text), "Sphinx markup in the help"
    params = inspect.signature(get_algorithm(name).state.__init__).parameters
    options = option_help(text)
    for setting in state_parameters(get_algorithm(name).state):
        flag = f"--{setting.replace('_', '-')}"
        assert flag in options, f"{flag} missing from 'onepass train {name} --help'"
        if params[setting].default is inspect.Parameter.empty:
            assert "(required)" in options[flag], options[flag]
        else:
            assert re.search(r"default", options[flag], re.I), f"{flag} shows no default: {options[flag]!r}"


def option_help(text: str) -> dict[str, str]:
    """Each option's help, by its first flag: its line and the indented ones after it."""
    options: dict[str, str] = {}
    flag = None
    for line in text.splitlines():
        head = re.match(r"^  (--[a-z0-9-]+)", line)
        if head:
            flag = head.group(1)
            options[flag] = line
        elif flag and line.startswith("    "):
            options[flag] += " " + line.strip()
        else:
            flag = None
    return options


def test_kmeans_n_clusters_shows_its_default() -> None:
    assert re.search(r"--n-clusters INTEGER .*?\(default: 8\)", option_help(help_of("train", "kmeans"))["--n-clusters"])


def test_train_help_lists_every_algorithm_with_its_summary() -> None:
    text = help_of("train")
    for name in PACKAGES:
        assert re.search(rf"^\s+{re.escape(name)}\s+\S", text, re.M), f"{name} not listed"
