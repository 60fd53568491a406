"""The ``llmsim.*`` metadata of an ONNX block: reading its entries, rebuilding the spec.

:func:`spec_from_onnx_metadata` rebuilds the :class:`~llmsim_nb.models.spec.ModelSpec`
a file was exported from; the entry readers here are shared with the importer
(:mod:`.importer`, :mod:`.block_ops`). Every refusal names the file and the entry.
"""

from __future__ import annotations

import re

from ..spec import ModelSpec
from .conventions import FORMAT_VERSION, META_PREFIX, open_model, read_metadata


def spec_from_onnx_metadata(path_or_model) -> ModelSpec:
    """Rebuild the :class:`ModelSpec` an ONNX file was exported from.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        If the file lacks the ``llmsim.*`` metadata :func:`~.export.export_block_onnx`
        writes, or an entry is not a valid value (naming the entry).
    """
    model, where = open_model(path_or_model)
    meta = read_metadata(model)
    _check_format(meta, where)
    keys = ("model_name", "num_layers", "hidden_size", "num_heads", "num_kv_heads",
            "ffn_hidden_size", "vocab_size", "max_seq_len", "activation", "norm",
            "position", "bias", "tied_embeddings", "dtype_bytes")
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ValueError(f"{where}: ONNX metadata lacks {[META_PREFIX + k for k in missing]}; "
                         f"only files written by export_block_onnx carry a full spec")
    ints = {k: _meta_int(meta, k, where) for k in keys[1:8] + ("dtype_bytes",)}
    try:
        return ModelSpec(name=meta["model_name"], activation=meta["activation"],
                         norm=meta["norm"], position=meta["position"],
                         bias=_meta_bool(meta, "bias", where),
                         tied_embeddings=_meta_bool(meta, "tied_embeddings", where), **ints)
    except ValueError as err:
        raise ValueError(f"{where}: the {META_PREFIX}* metadata does not make a valid spec: "
                         f"{err}") from None


_INT_TEXT = re.compile(r"[0-9]+")
_MAX_INT = 2**31 - 1


def _meta_int(meta: dict[str, str], key: str, where: str) -> int:
    """An ``llmsim.<key>`` entry that must be a decimal integer >= 1."""
    raw = meta[key]
    # Bounded like a HuggingFace config's counts: no model is near 2**31 of anything.
    if not _INT_TEXT.fullmatch(raw) or len(raw) > 10 or not 1 <= int(raw) <= _MAX_INT:
        shown = raw if len(raw) <= 24 else f"{raw[:20]}... ({len(raw)} characters)"
        raise ValueError(f"{where}: metadata {META_PREFIX}{key}={shown!r} must be an integer "
                         f"in 1..{_MAX_INT}")
    return int(raw)


def _meta_bool(meta: dict[str, str], key: str, where: str) -> bool:
    raw = meta[key]
    if raw not in ("true", "false"):
        raise ValueError(f"{where}: metadata {META_PREFIX}{key}={raw!r} must be 'true' or "
                         f"'false'")
    return raw == "true"


def _check_format(meta: dict[str, str], where: str) -> None:
    version = meta.get("format_version")
    if version is not None and version != FORMAT_VERSION:
        raise ValueError(f"{where}: metadata {META_PREFIX}format_version={version!r} is not "
                         f"supported; this reader reads format {FORMAT_VERSION!r}")
