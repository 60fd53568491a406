"""The model catalog: names (and aliases) to :class:`~.spec.ModelSpec`.

The built-in models live in ``llmsim_nb/presets/models.yaml``; the file is read
the first time the catalog is used, never at import. Users add their own models
with :func:`register_model`. Lookups are case-insensitive and accept any alias
(HuggingFace ids such as ``"meta-llama/Llama-2-70b-hf"`` or the original
simulator's spellings such as ``"gpt3-7b"``).
"""

from __future__ import annotations

from typing import Any

from .._presets import read_preset_file
from ..config.fields import suggestion
from .mla_spec import MLASpec
from .moe_spec import MoESpec
from .spec import ModelSpec


# Fields an entry of models.yaml may set (besides ``family``).
_SPEC_FIELDS = ("name", "num_layers", "hidden_size", "num_heads", "num_kv_heads",
                "ffn_hidden_size", "vocab_size", "max_seq_len", "activation", "norm",
                "position", "bias", "tied_embeddings", "dtype_bytes", "aliases", "head_dim",
                "qk_norm", "layer_types", "sliding_window", "attention_sinks", "mla", "moe",
                "weight_dtype", "expert_weight_dtype", "kv_dtype")


def _parts(fields: dict[str, Any], source: str) -> None:
    """Turn an entry's ``moe`` / ``mla`` mappings into their specs (in place).

    ``moe.first_dense_layers: N`` stands for ``moe_layers`` N .. num_layers - 1
    (DeepSeek's ``first_k_dense_replace``); ``layer_types`` may be given as a
    shorter pattern repeated over the layers (gpt-oss: [sliding, full]).
    """
    name = fields.get("name")
    for key, cls in (("moe", MoESpec), ("mla", MLASpec)):
        part = fields.get(key)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise ValueError(f"{source}: model {name!r} has {key}={part!r}; it must be a "
                             f"mapping of {cls.__name__} fields")
        part = dict(part)
        first = part.pop("first_dense_layers", None)
        if first is not None:
            layers = fields.get("num_layers")
            if (not isinstance(first, int) or isinstance(first, bool) or not isinstance(layers, int)
                    or not 0 <= first < layers):
                raise ValueError(f"{source}: model {name!r}: moe.first_dense_layers={first!r} "
                                 f"must be an integer in 0..num_layers-1 ({layers!r} layers): "
                                 f"the dense layers before the first MoE layer")
            part["moe_layers"] = tuple(range(first, layers))
        try:
            fields[key] = cls(**part)
        except TypeError as exc:
            raise ValueError(f"{source}: model {name!r}: {key}: {exc}") from exc
    types = fields.get("layer_types")
    layers = fields.get("num_layers")
    if types and isinstance(layers, int) and len(types) < layers and layers % len(types) == 0:
        fields["layer_types"] = tuple(types) * (layers // len(types))

_specs: dict[str, ModelSpec] | None = None   # canonical lower-case name -> spec
_lookup: dict[str, str] = {}                 # lower-case name or alias -> canonical key


def _spec_from_entry(entry: dict[str, Any], families: dict[str, dict[str, Any]],
                     source: str) -> ModelSpec:
    """Build one spec from a YAML entry merged over its family defaults."""
    if not isinstance(entry, dict):
        raise ValueError(f"{source}: each entry of 'models' must be a mapping, got {entry!r}")
    fields = dict(entry)
    family = fields.pop("family", None)
    if family is not None:
        if family not in families:
            raise ValueError(f"{source}: model {fields.get('name')!r} has family={family!r}; "
                             f"known families are {sorted(families)}")
        fields = {**families[family], **fields}
    unknown = sorted(set(fields) - set(_SPEC_FIELDS))
    if unknown:
        raise ValueError(f"{source}: model {fields.get('name')!r} has unknown field(s) "
                         f"{unknown}; allowed fields are {list(_SPEC_FIELDS)} and 'family'")
    fields.setdefault("num_kv_heads", fields.get("num_heads"))
    fields["aliases"] = tuple(fields.get("aliases", ()))
    _parts(fields, source)
    try:
        return ModelSpec(**fields)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"{source}: model {fields.get('name')!r} is incomplete: {exc}") from exc


def load_catalog_file(path=None) -> list[ModelSpec]:
    """Read a catalog YAML file (the packaged one by default).

    Parameters
    ----------
    path : str or path-like, optional
        A YAML file with the layout of ``presets/models.yaml`` (``families``
        and ``models``). ``None`` reads the packaged catalog.

    Returns
    -------
    list of ModelSpec
        In file order.
    """
    if path is None:
        data, source = read_preset_file("models.yaml"), "presets/models.yaml"
    else:
        from ..config.yaml_file import read_yaml_file  # strict: no duplicate keys

        data, source = read_yaml_file(path, "model catalog file") or {}, str(path)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ValueError(f"{source}: expected a mapping with a 'models' list")
    families = data.get("families") or {}
    return [_spec_from_entry(entry, families, source) for entry in data["models"]]


def _catalog() -> dict[str, ModelSpec]:
    global _specs
    if _specs is None:
        _specs = {}
        for spec in load_catalog_file():
            _add(spec, overwrite=False)
    return _specs


def _names_of(spec: ModelSpec) -> list[str]:
    return [spec.name.lower()] + [alias.lower() for alias in spec.aliases]


def _add(spec: ModelSpec, overwrite: bool) -> None:
    assert _specs is not None
    key = spec.name.lower()
    for name in _names_of(spec):
        owner = _lookup.get(name)
        if owner is not None and owner != key and not overwrite:
            raise ValueError(
                f"model name or alias {name!r} of {spec.name!r} is already used by "
                f"{_specs[owner].name!r}; pass overwrite=True to replace it")
    if key in _specs:
        if not overwrite:
            raise ValueError(f"model name {spec.name!r} is already in the catalog; pass "
                             f"overwrite=True to replace it")
        _remove(key)
    for name in _names_of(spec):
        owner = _lookup.get(name)
        if owner is not None and owner != key:
            _remove(owner)
    _specs[key] = spec
    for name in _names_of(spec):
        _lookup[name] = key


def _remove(key: str) -> None:
    assert _specs is not None
    spec = _specs.pop(key)
    for name in _names_of(spec):
        if _lookup.get(name) == key:
            del _lookup[name]


def get_model(name: str | ModelSpec) -> ModelSpec:
    """Look up a model by name or alias (case-insensitive).

    Parameters
    ----------
    name : str or ModelSpec
        Catalog name (``"llama-2-70b"``), alias (``"meta-llama/Llama-2-70b-hf"``,
        ``"gpt3-7b"``), the path of a HuggingFace ``config.json`` (a name ending
        in ``.json``: :func:`~.hf_config.model_from_hf_config`), or a spec,
        which is returned unchanged.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        If the name is not in the catalog; the message suggests the closest
        names or aliases (when one is close) and lists the known names.
    """
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string or ModelSpec, got {name!r}")
    if name.endswith(".json"):  # a HuggingFace config.json, read (never downloaded)
        from .hf_config import model_from_hf_config
        return model_from_hf_config(name)
    specs = _catalog()
    key = _lookup.get(name.strip().lower())
    if key is None:
        known = list_models()
        # The closest names and aliases as the catalog spells them (only when
        # close: difflib's 0.6 cutoff); the name is never replaced by one.
        hint = suggestion(name, list_models(include_aliases=True))
        hint = f" ({hint})" if hint else ""
        raise ValueError(f"model name {name!r} is not in the catalog{hint}; known models: "
                         f"{', '.join(known)} (HuggingFace ids and aliases of these are "
                         f"accepted too; add your own with register_model)")
    return specs[key]


def list_models(include_aliases: bool = False) -> list[str]:
    """Names of the catalog's models, in catalog order.

    Parameters
    ----------
    include_aliases : bool, default False
        Also list every alias after the canonical names.

    Returns
    -------
    list of str
    """
    specs = _catalog()
    names = [spec.name for spec in specs.values()]
    if include_aliases:
        names += [alias for spec in specs.values() for alias in spec.aliases]
    return names


def register_model(spec: ModelSpec, *, overwrite: bool = False) -> ModelSpec:
    """Add a user model to the catalog (under its name and its aliases).

    Parameters
    ----------
    spec : ModelSpec
    overwrite : bool, default False
        Replace an existing model with the same name or alias instead of raising.

    Returns
    -------
    ModelSpec
        ``spec``, for chaining.

    Raises
    ------
    ValueError
        If ``spec`` is not a ModelSpec, or its name or an alias is taken and
        ``overwrite`` is false.
    """
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"register_model expects a ModelSpec, got {type(spec).__name__}")
    _catalog()
    _add(spec, overwrite=overwrite)
    return spec


def unregister_model(name: str) -> None:
    """Remove a model (by name or alias) from the catalog.

    Parameters
    ----------
    name : str

    Raises
    ------
    ValueError
        If the name is not in the catalog.
    """
    spec = get_model(name)
    _remove(spec.name.lower())
