"""Strict parsing of topology files: JSON and YAML that refuse a duplicated key.

:func:`_parse_json` and :func:`_parse_yaml` turn a file's text into data,
refusing a key given twice in one JSON object or YAML mapping (readers
disagree on which value wins); every error is one ``ValueError`` naming the
file. :func:`_show` and :func:`_dimension_error` keep messages one line and
name the file's key a bad :class:`~llmsim_nb.network.topology.Dimension`
value came from.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from ..config.yaml_file import DuplicateKeyError, strict_yaml_loader, unique_keys
from ..config.yaml_file import shown as _show

_FIELD = re.compile(r"Dimension\.(\w+)")


def _dimension_error(err: ValueError, given: dict[str, Any], keys: dict[str, str]) -> str:
    """``err`` of a Dimension, followed by the file's key and value it came from."""
    match = _FIELD.search(str(err))
    field = match.group(1) if match else None
    if field in keys and field in given:
        return f"{err} (from {keys[field]}={_show(given[field])})"
    return str(err)


def _parse_json(raw: str, where: str) -> Any:
    """The data of a JSON file's text ``raw``; ``where`` names the file in errors."""
    try:
        return json.loads(raw, object_pairs_hook=unique_keys)
    except DuplicateKeyError as dup:
        raise ValueError(f"{where}: key {dup.key!r} appears more than once in one JSON "
                         f"object; each key may appear only once") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{where}: not valid JSON (nested too deeply)") from None


def _parse_yaml(raw: str, where: str) -> Any:
    """The data of a YAML file's text ``raw``; ``where`` names the file in errors."""
    try:
        # The settings files' strict reading: no key twice, plain decimal numbers only.
        return yaml.load(raw, Loader=strict_yaml_loader())  # noqa: S506 (a SafeLoader)
    except DuplicateKeyError as dup:
        raise ValueError(f"{where}: key {_show(dup.key)} appears more than once in one "
                         f"mapping (line {dup.line}); each key may appear only once") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{where}: not valid YAML ({' '.join(str(err).split())})") from None
    except RecursionError:
        raise ValueError(f"{where}: not valid YAML (nested too deeply)") from None
