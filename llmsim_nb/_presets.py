"""Read the YAML presets shipped in ``llmsim_nb/presets/`` (one reader for all)."""

from __future__ import annotations

import importlib.resources
from typing import Any

import yaml


def read_preset_file(filename: str) -> dict[str, Any]:
    """The parsed ``llmsim_nb/presets/<filename>`` (an empty dict for an empty file)."""
    text = importlib.resources.files("llmsim_nb").joinpath("presets", filename).read_text(
        encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"presets/{filename} must hold a mapping")
    return data


def preset_entries(filename: str) -> dict[str, Any]:
    """The ``presets:`` mapping of a preset file (name -> entry)."""
    entries = read_preset_file(filename).get("presets") or {}
    if not isinstance(entries, dict):
        raise ValueError(f"presets/{filename}: 'presets' must be a mapping")
    return entries
