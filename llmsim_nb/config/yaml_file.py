"""Reading YAML files of settings, with one-line errors naming the file.

YAML is read strictly (:func:`strict_yaml_loader`): a key given twice in one
mapping is an error (PyYAML keeps the last one silently), and numbers are
plain decimals only (``4``, ``-2``, ``0.5``, ``1e-3``, ``.inf``): YAML 1.1's
hexadecimal and octal integers (``0x10``), digit separators (``1_000``) and
base-60 numbers (``1:30`` read as 90) stay strings, which the config's checks
then refuse naming the flag, instead of being read as a different number.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from .fields import did_you_mean_each


class DuplicateKeyError(ValueError):
    """A mapping (YAML) or object (JSON) gives one key twice; ``line`` where known."""

    def __init__(self, key: Any, line: int | None = None) -> None:
        where = f"(again at line {line})" if line is not None else "in one object"
        super().__init__(f"key {key!r} appears more than once {where}")
        self.key, self.line = key, line


def shown(value: Any) -> str:
    """``repr`` of a value read from a file, cut short so a message stays one line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """``json.loads``'s ``object_pairs_hook`` that refuses a key given twice
    (json keeps the last one silently): raises :class:`DuplicateKeyError`."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[Any] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return out


_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?$"
                    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$")


@cache
def strict_yaml_loader():
    """A ``yaml.SafeLoader`` subclass: no duplicate keys, decimal numbers only."""
    import yaml

    int_tag, float_tag = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # "<<" merges may be overridden by explicit keys
                    key = self.construct_object(key_node, deep=True)
                    try:
                        duplicate = key in seen
                    except TypeError:  # unhashable: the base class reports it
                        continue
                    if duplicate:
                        raise DuplicateKeyError(key, key_node.start_mark.line + 1)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    StrictLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (int_tag, float_tag)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    StrictLoader.add_implicit_resolver(int_tag, _INT, list("-+0123456789"))
    def decimal_int(loader, node):
        # Decimal, always: PyYAML's own constructor reads a leading 0 as octal ("08"
        # fails) and takes 0x, 0o, _ and base 60 under an explicit !!int tag too.
        text = loader.construct_scalar(node)
        if not isinstance(text, str) or not _INT.match(text):
            raise yaml.constructor.ConstructorError(
                None, None, f"{text!r} is not a plain decimal integer", node.start_mark)
        return int(text)

    StrictLoader.add_constructor(int_tag, decimal_int)
    StrictLoader.add_implicit_resolver(float_tag, _FLOAT, list("-+0123456789."))
    return StrictLoader

def yaml_problem(exc: Exception) -> str:
    """A YAML parse error on one line: what is wrong and where (PyYAML's spans several)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return problem + (f" at line {mark.line + 1}, column {mark.column + 1}" if mark else "")


def read_yaml_file(path: str | Path, what: str) -> Any:
    """Parse a YAML file; ``ValueError`` naming ``what`` and the file if it cannot be."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what} {str(p)!r} does not exist")
    try:
        return yaml.load(p.read_text(), Loader=strict_yaml_loader())  # noqa: S506 (safe)
    except DuplicateKeyError as exc:
        raise ValueError(f"{what} {str(p)!r}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {str(p)!r} is not valid YAML: {yaml_problem(exc)}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {str(p)!r} is not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start})") from None
    except RecursionError:
        raise ValueError(f"{what} {str(p)!r} nests too deeply to be a settings file") from None


def read_yaml_flags(path: str | Path, known) -> dict[str, Any]:
    """A YAML file of flag names -> values; ``ValueError`` for any key not in ``known``
    (suggesting the closest known key of each, when one is close)."""
    p = Path(path)
    data = read_yaml_file(p, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(p)!r} must hold a mapping of flag names to values")
    unknown = sorted(set(data) - set(known), key=str)  # YAML keys may be numbers too
    if unknown:
        raise ValueError(f"config file {str(p)!r} has unknown key(s) {unknown}; "
                         f"known: {sorted(known)}{did_you_mean_each(unknown, known)}")
    return data
