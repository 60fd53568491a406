"""Every ``llmsim`` option's help says its default; unknown options get a did-you-mean.

:func:`add_missing_defaults` walks the finished parser (every subcommand) and
appends ``(default ...)`` to each option whose help does not already state
one: a config flag's dataclass default (:func:`.run.flag_defaults`), or for a
flag whose default is None what None means, read from the field's own help
("None = the model's context length"); other options' None defaults are
described in :data:`NOT_GIVEN`. Switches (``store_true``: off unless given)
and required options are left as they are. :func:`unknown_option_hint`
suggests the closest option of the subcommand for argparse's "unrecognized
arguments" error.
"""

from __future__ import annotations

import argparse
import re

#: What an option does when it is not given: options that are not config flags,
#: and config flags whose field help words None's meaning too long or not at all.
NOT_GIVEN = {
    "host_bandwidth": "the hardware preset's host link",
    "host_latency": "the hardware preset's host link's",
    "gpu_memory_utilization": "none: activation_reserve is kept out instead",
    "num_kv_blocks": "as many as fit beside the weights",
    "config": "none",
    "output": "none: nothing written",
    "trace_events": "none: not written",
    "limit": "the whole trace",
    "shared_prefix": "off",
    "multi_turn": "off",
    "slo_ttft": "none: no TTFT objective",
    "slo_tpot": "none: no TPOT objective",
    "out_dir": "the file's",
    "workers": "the file's",
    "scheduler_address": "a LocalCluster",
    "measured": "none",
    "curve": "none",
    "vllm_run": "none",
    "router": "the file's",
    "decode_router": "the file's",
    "router_staleness": "the file's",
    "dataset": "the packaged trace",
}

_NONE_MEANS = re.compile(r"\bNone (?:= |takes |builds |is )?(?:use )?([^;]+?)(?:;|\.(?: |$)|$)")


def _none_meaning(flag: str, fields: dict) -> str | None:
    """What a config flag's None default means, from its field's help, or None."""
    f = fields.get(flag)
    if f is None:
        return None
    found = _NONE_MEANS.search(f.metadata.get("help", ""))
    return found.group(1).strip() if found else None


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.values()


def _needs_default(action: argparse.Action) -> bool:
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._StoreTrueAction,
            argparse._SubParsersAction)
    return (bool(action.option_strings) and not isinstance(action, skip)
            and not action.required and "default" not in (action.help or ""))


def add_missing_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default ...)`` to every option of every subcommand whose help lacks it."""
    from .run import _config_fields, flag_defaults

    defaults, fields = flag_defaults(), _config_fields()
    for sub in _subparsers(parser):
        for action in sub._actions:
            if not _needs_default(action):
                continue
            flag = action.dest
            text = defaults.get(flag)
            if text is None and flag in fields and fields[flag].default is False:
                text = "default off"
            elif text is None:
                meaning = NOT_GIVEN.get(flag) or _none_meaning(flag, fields) or "none"
                text = f"default: {meaning}"
            action.help = f"{action.help} ({text})" if action.help else f"({text})"


def unknown_option_hint(parser: argparse.ArgumentParser, message: str,
                        argv: list[str] | None) -> str:
    """argparse's "unrecognized arguments" ``message`` plus the closest options of the
    subcommand given in ``argv`` ("" when none is close, or for other messages)."""
    from ..config.fields import suggestion

    if not message.startswith("unrecognized arguments:"):
        return ""
    subs = {name: sub for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}
    command = next((word for word in (argv or []) if word in subs), None)
    options = [opt for sub in ([subs[command]] if command else subs.values())
               for opt in sub._option_string_actions]
    hints = []
    for word in message.removeprefix("unrecognized arguments:").split():
        if word.startswith("--"):
            # Compared without the dashes, so a typo's prefix finds its option.
            close = suggestion(word.split("=", 1)[0].lstrip("-"),
                               sorted({o.lstrip("-") for o in options if o.startswith("--")}))
            if close:
                hints.append(f"{word}: " + re.sub(r"'([^']+)'", r"'--\1'", close))
    return "; " + "; ".join(hints) if hints else ""


__all__ = ["NOT_GIVEN", "add_missing_defaults", "unknown_option_hint"]
