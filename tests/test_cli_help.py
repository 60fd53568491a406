"""``llmsim --help`` states every option's default; a mistyped option gets a did-you-mean."""

from __future__ import annotations

import argparse

import pytest

from llmsim_nb.cli.main import _build_parser, main


def _options():
    """(subcommand, action) of every option of every subcommand."""
    parser = _build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for option in sub._actions:
                    if option.option_strings:
                        yield name, option


def test_every_option_states_its_default():
    switches = (argparse._StoreTrueAction, argparse._HelpAction)
    seen = 0
    for command, action in _options():
        if isinstance(action, switches) or action.required:
            continue  # a switch is off unless given; a required option has none
        seen += 1
        assert "default" in (action.help or ""), (command, action.option_strings, action.help)
    assert seen > 100  # run, validate, sweep and cluster all walked


def test_defaults_read_from_the_config_and_from_the_table(capsys):
    helps = {(c, a.dest): a.help for c, a in _options()}
    assert helps["run", "limit"].endswith("(default: the whole trace)")
    assert helps["run", "max_model_len"].endswith(
        "(default: the model's context length) (range 1 .. 16777216 tokens)")
    assert helps["run", "power"].endswith("(default off)")
    assert helps["validate", "seed"].endswith("(default 0)")
    assert helps["validate", "model_name"].endswith("(default gpt3-6.7b)")
    assert helps["sweep", "workers"].endswith("(default: the file's)")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--limit N simulate at most the first N requests of the trace (default: the whole " \
           "trace)" in out


def test_a_mistyped_option_gets_the_closest(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--num_kvblocks", "3"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "llmsim: error: unrecognized arguments: --num_kvblocks 3; --num_kvblocks: did you "
        "mean '--num_kv_blocks'?\n")
    with pytest.raises(SystemExit):
        main(["cluster", "--config", "c.yaml", "--rooter", "x"])
    assert capsys.readouterr().err.endswith("--rooter: did you mean '--router' or '--rate'?\n")


def test_nothing_is_suggested_when_nothing_is_close(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--qqqqzzzz", "1"])
    assert capsys.readouterr().err == "llmsim: error: unrecognized arguments: --qqqqzzzz 1\n"
