"""Sphinx extension of the llmsim_nb docs: pages generated from the code.

- ``{llmsim-cli}``: the ``llmsim`` command-line reference, walked from the
  argparse parser the console script builds (:func:`cli_reference`), so every
  subcommand and flag is listed with its help, and none can be forgotten.
- ``{llmsim-variables}``: the Dataset variables table, one row per entry of
  :data:`llmsim_nb.results.variables.VARIABLES` (:func:`variables_table`).
- At ``config-inited`` the tutorials (``tutorials/*.ipynb``) are copied to
  ``docs/_generated/tutorials/`` for myst-nb to render (never executed there).

The two generator functions return plain data (no docutils), so
``tests/test_docs.py`` checks their completeness without running Sphinx.
"""

from __future__ import annotations

import argparse
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
REPO = DOCS.parent
GENERATED = DOCS / "_generated"


@dataclass(frozen=True)
class Flag:
    """One argument of a subcommand, as the reference prints it."""

    names: str      # "--rate" or "-h, --help" or a positional's name
    value: str      # metavar, choices or "" for a switch
    default: str    # "" when argparse's default is None / False / suppressed
    help: str


@dataclass(frozen=True)
class Command:
    """One (sub)command of ``llmsim``: its full name, usage, text and flags."""

    name: str       # "llmsim run"
    usage: str
    description: str
    flags: tuple[Flag, ...]


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return " | ".join(str(c) for c in action.choices)
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.type is not None:
        return getattr(action.type, "__name__", str(action.type)).upper()
    return action.dest.upper()


def _default(action: argparse.Action) -> str:
    default = action.default
    if default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
        return ""
    return str(default)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    # argparse's own expansion of %(default)s, %(choices)s ...
    return " ".join(parser._get_formatter()._expand_help(action).split())


def _commands(parser: argparse.ArgumentParser, name: str) -> list[Command]:
    flags, children = [], []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                children.extend(_commands(sub, f"{name} {sub_name}"))
            flags.append(Flag("command", " | ".join(action.choices), "", "the subcommand"))
            continue
        names = ", ".join(action.option_strings) or action.dest
        flags.append(Flag(names, _value(action), _default(action), _help(parser, action)))
    usage = " ".join(parser.format_usage().split())
    usage = usage.removeprefix("usage: ")
    description = parser.description or _help_of(parser) or ""
    return [Command(name, usage, description, tuple(flags)), *children]


def _help_of(parser: argparse.ArgumentParser) -> str:
    return getattr(parser, "_llmsim_help", "")


def cli_reference() -> list[Command]:
    """Every command of ``llmsim``, the top level first, walked from its parser.

    Returns
    -------
    list of Command
        ``llmsim``, then each subcommand (depth first), with all its arguments.
    """
    from llmsim_nb.cli.main import _build_parser

    parser = _build_parser()
    # a subcommand's one-line help (add_parser(help=...)) serves as its text
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                if not sub.description and choice.help:
                    sub._llmsim_help = choice.help
    return _commands(parser, "llmsim")


def variables_table() -> list[tuple[str, str, str]]:
    """(name, units, long_name) of every Dataset variable, in ``VARIABLES`` order."""
    from llmsim_nb.results.variables import VARIABLES

    return [(name, units, long_name) for name, (units, long_name) in VARIABLES.items()]


# ------------------------------------------------------------------ Sphinx side

def _table(headers, rows, widths, literal_columns=(0,)):
    from docutils import nodes

    def row(cells, header=False):
        out = nodes.row()
        for i, cell in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            if cell and i in literal_columns and not header:
                para += nodes.literal(text=cell)
            else:
                para += nodes.Text(cell)
            entry += para
            out += entry
        return out

    table = nodes.table()
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += row(headers, header=True)
    group += head
    body = nodes.tbody()
    for cells in rows:
        body += row(cells)
    group += body
    return table


def _directives():
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class CLIReference(SphinxDirective):
        """The whole ``llmsim`` reference: a rubric, usage and table per command."""

        def run(self):
            out = []
            for command in cli_reference():
                target = "cli-" + command.name.replace(" ", "-")
                rubric = nodes.rubric(text=command.name, ids=[target])
                out.append(rubric)
                if command.description:
                    out.append(nodes.paragraph(text=command.description))
                out.append(nodes.literal_block(text=command.usage, language="text"))
                rows = [(f.names, f.value, f.default, f.help) for f in command.flags]
                out.append(_table(("flag", "value", "default", "meaning"), rows,
                                  (22, 16, 10, 52), literal_columns=(0, 1, 2)))
            return out

    class VariablesTable(SphinxDirective):
        """Every Dataset variable with its units and long name."""

        def run(self):
            return [_table(("variable", "units", "long_name"), variables_table(),
                           (24, 8, 68), literal_columns=(0, 1))]

    return CLIReference, VariablesTable


def copy_tutorials(app=None, config=None) -> list[Path]:
    """Copy ``tutorials/*.ipynb`` under ``docs/_generated/tutorials`` (unchanged
    files are left alone, so incremental builds stay incremental)."""
    target = GENERATED / "tutorials"
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    sources = sorted((REPO / "tutorials").glob("[0-9]*.ipynb"))
    names = {path.name for path in sources}
    for stale in target.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()
    for source in sources:
        dest = target / source.name
        if not dest.exists() or dest.read_bytes() != source.read_bytes():
            shutil.copyfile(source, dest)
        copied.append(dest)
    return copied


_SECTION_RULE = re.compile(r"^\s*-{3,}\s*$")
_NAMES = re.compile(r"^(\s*)([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)+)\s*(?::\s*(.*))?$")


def split_attribute_names(app, what, name, obj, options, lines) -> None:
    """Give each name of a numpydoc ``a, b : type`` line of an ``Attributes``
    section its own entry (napoleon renders ``Parameters`` lines of several
    names, but not attribute lines: ``compute_latency, memory_latency`` would
    come out as one mangled variable). Runs before napoleon, in place."""
    out, section, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.strip() and i + 1 < len(lines) and _SECTION_RULE.match(lines[i + 1]):
            section = line.strip()
            out += [line, lines[i + 1]]
            i += 2
            continue
        match = _NAMES.match(line) if section == "Attributes" else None
        if match is None:
            out.append(line)
            i += 1
            continue
        indent, names, kind = match.group(1), match.group(2), match.group(3)
        j = i + 1
        while j < len(lines) and (not lines[j].strip()
                                  or len(lines[j]) - len(lines[j].lstrip()) > len(indent)):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():   # keep trailing blank lines outside
            j -= 1
        for one in (n.strip() for n in names.split(",")):
            out.append(f"{indent}{one} : {kind}" if kind else f"{indent}{one}")
            out.extend(lines[i + 1:j])
        i = j
    lines[:] = out


def setup(app):
    cli, variables = _directives()
    app.add_directive("llmsim-cli", cli)
    app.add_directive("llmsim-variables", variables)
    app.connect("config-inited", copy_tutorials)
    app.connect("autodoc-process-docstring", split_attribute_names, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
