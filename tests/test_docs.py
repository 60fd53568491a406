"""The docs site's generated pages are complete, checked without running Sphinx.

``docs/_ext/llmsim_docs.py`` builds the CLI reference from the ``llmsim``
parser and the Dataset variables table from ``VARIABLES``; these tests call
its generator functions (plain data, no docutils) and compare them with the
parser and the dict themselves, walked here independently. The Sphinx build
(warnings as errors) runs in ``.ci/run``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import llmsim_docs  # noqa: E402

from llmsim_nb.cli.main import _build_parser  # noqa: E402
from llmsim_nb.results.dataset import VARIABLES  # noqa: E402


def _subparsers(parser: argparse.ArgumentParser, name: str):
    """(full command name, parser) of every (sub)command, depth first."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _subparsers(sub, f"{name} {sub_name}")


def test_cli_reference_lists_every_subcommand_and_flag():
    commands = {c.name: c for c in llmsim_docs.cli_reference()}
    expected = dict(_subparsers(_build_parser(), "llmsim"))
    assert set(commands) == set(expected)
    assert {"llmsim run", "llmsim sweep", "llmsim validate", "llmsim list",
            "llmsim cluster"} <= set(commands)
    for name, parser in expected.items():
        listed = {opt for flag in commands[name].flags for opt in flag.names.split(", ")}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            for option in action.option_strings or [action.dest]:
                assert option in listed, f"{name}: {option} missing from the CLI reference"
        assert commands[name].usage.startswith(name), commands[name].usage


def test_cli_reference_carries_help_defaults_and_choices():
    run = {f.names: f for f in next(c for c in llmsim_docs.cli_reference()
                                    if c.name == "llmsim run").flags}
    assert "--scheduling" in run and "orca" in run["--scheduling"].help
    assert run["--sort"].value == ""                    # a switch takes no value
    assert run["--trace_events"].value == "PATH"        # its metavar
    listing = next(c for c in llmsim_docs.cli_reference() if c.name == "llmsim list")
    what = next(f for f in listing.flags if not f.names.startswith("-"))
    assert {"models", "hardware", "networks"} <= set(what.value.split(" | "))
    for command in llmsim_docs.cli_reference():
        for flag in command.flags:
            assert "%(" not in flag.help, (command.name, flag)   # argparse's % expanded


def test_variables_table_has_every_variable_with_its_attributes():
    rows = llmsim_docs.variables_table()
    assert [name for name, _, _ in rows] == list(VARIABLES)
    for name, units, long_name in rows:
        assert (units, long_name) == VARIABLES[name]
        assert units and long_name, name


def test_tutorials_are_copied_for_rendering(tmp_path, monkeypatch):
    monkeypatch.setattr(llmsim_docs, "GENERATED", tmp_path)
    copied = llmsim_docs.copy_tutorials()
    names = sorted(p.name for p in (REPO / "tutorials").glob("[0-9]*.ipynb"))
    assert sorted(p.name for p in copied) == names and names
    for path in copied:   # byte-identical, so the docs render what the tests run
        assert path.read_bytes() == (REPO / "tutorials" / path.name).read_bytes()
    (tmp_path / "tutorials" / "99-gone.ipynb").write_text(json.dumps({}))
    llmsim_docs.copy_tutorials()   # a tutorial removed from tutorials/ leaves the site
    assert not (tmp_path / "tutorials" / "99-gone.ipynb").exists()


@pytest.mark.parametrize("page", ["index.md", "reference/cli.md", "reference/variables.md",
                                  "reference/api.md"])
def test_reference_pages_use_the_generators(page):
    text = (DOCS / page).read_text()
    assert text.startswith("# ")
    if page == "reference/cli.md":
        assert "{llmsim-cli}" in text
    if page == "reference/variables.md":
        assert "{llmsim-variables}" in text
    if page == "index.md":   # every topic page docs/*.md is picked up by a glob
        assert ":glob:" in text and "\n*\n" in text


def test_attribute_lines_of_several_names_are_split_for_napoleon():
    lines = ["Timing.", "", "Attributes", "----------", "latency : ndarray",
             "    Seconds.", "compute_latency, memory_latency : ndarray",
             "    Alone-times;", "    see below.", "", "Notes", "-----",
             "a, b : not an attribute line here"]
    llmsim_docs.split_attribute_names(None, "class", "x", None, None, lines)
    assert lines == ["Timing.", "", "Attributes", "----------", "latency : ndarray",
                     "    Seconds.", "compute_latency : ndarray", "    Alone-times;",
                     "    see below.", "memory_latency : ndarray", "    Alone-times;",
                     "    see below.", "", "Notes", "-----",
                     "a, b : not an attribute line here"]
