"""Strict reading of a HuggingFace ``config.json`` and typed reads of its keys.

:func:`_load` opens the file (or takes a dict) and parses it as JSON, refusing
a key given twice in one object; :class:`_Reader` reads counts, flags and
strings from it. Every refusal is one ``ValueError`` line naming the config,
the key and the value (see :mod:`.hf_config`, "What is refused").
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from ..config.yaml_file import DuplicateKeyError, unique_keys
from ..config.yaml_file import shown as _show

_MAX_INT = 2**31 - 1
_MISSING = object()


def _load(path_or_dict) -> tuple[dict[str, Any], str | None, str]:
    """The parsed config, the name of its folder (or None) and how messages name it."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict), None, "HuggingFace config (dict)"
    if not isinstance(path_or_dict, (str, os.PathLike)):
        raise ValueError(f"path_or_dict must be a path to config.json or a dict, got "
                         f"{type(path_or_dict).__name__}")
    path = os.fspath(path_or_dict)
    if isinstance(path, bytes):
        raise ValueError(f"path_or_dict must be a str path, got bytes {path!r}")
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    where = f"HuggingFace config {path!r}"
    if not os.path.isfile(path):
        raise ValueError(f"{where}: file not found (give a config.json or the directory "
                         f"holding one)")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8")
    except OSError as err:
        raise ValueError(f"{where}: cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: is not UTF-8 text (byte {err.start}); a config.json "
                         f"is JSON text") from None
    try:
        config = json.loads(text, object_pairs_hook=unique_keys)
    except DuplicateKeyError as dup:
        raise ValueError(f"{where}: key {dup.key!r} appears more than once in one JSON "
                         f"object; each key may appear only once") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON: {err.msg} at line {err.lineno} column "
                         f"{err.colno}") from None
    except RecursionError:
        raise ValueError(f"{where}: not valid JSON: nested too deeply") from None
    if not isinstance(config, dict):
        raise ValueError(f"{where}: a HuggingFace config must be a JSON object, got "
                         f"{type(config).__name__}")
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return config, folder or None, where


class _Reader:
    """Typed reads of config keys; every refusal names the config, the key and the value."""

    def __init__(self, config: dict[str, Any], where: str):
        self.config = config
        self.where = where

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.where}: {message}")

    def count(self, key: str, default: Any = _MISSING) -> Any:
        """A JSON integer in ``1 .. 2**31 - 1``; ``default`` when absent or null."""
        value = self.config.get(key)
        if value is None:
            if default is _MISSING:
                raise self.fail(f"missing required key {key!r}")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            kind = "a float" if isinstance(value, float) else type(value).__name__
            raise self.fail(f"{key}={_show(value)} must be a JSON integer >= 1, got {kind}")
        if not 1 <= value <= _MAX_INT:
            raise self.fail(f"{key}={_show(value)} must be an integer in 1..{_MAX_INT}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        """JSON ``true``/``false``; ``default`` when absent."""
        if key not in self.config:
            return default
        value = self.config[key]
        if not isinstance(value, bool):
            raise self.fail(f"{key}={_show(value)} must be true or false (a JSON boolean)")
        return value

    def text(self, key: str, default: str | None) -> str | None:
        """A string; ``default`` when absent or null."""
        value = self.config.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(f"{key}={_show(value)} must be a string")
        return value

    def require(self, style: str, *keys: str) -> list[int]:
        missing = [key for key in keys if self.config.get(key) is None]
        if missing:
            raise self.fail(f"{style}-style HuggingFace config is missing required key(s) "
                            f"{missing} (null counts as missing); it needs {list(keys)}")
        return [self.count(key) for key in keys]
