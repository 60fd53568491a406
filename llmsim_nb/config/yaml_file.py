"""Reading YAML files of settings, with one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .fields import did_you_mean_each

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
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {str(p)!r} is not valid YAML: {yaml_problem(exc)}") from None


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
