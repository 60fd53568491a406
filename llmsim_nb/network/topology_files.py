"""Reading topologies: ASTRA-sim JSON files, our YAML format, presets, the default.

:func:`load_topology` reads ASTRA-sim analytical JSON files (units: ns and
GB/s, with GB = 1e9 bytes) and our own YAML format, and resolves bare names
such as ``"gpu_n4.json"`` to the presets in ``llmsim_nb/presets/networks.yaml``,
which hold the figures of every seed network file of LLMServingSim.
:func:`default_topology` builds the network the original uses when none is
given. Everything here produces a :class:`~llmsim_nb.network.topology.Topology`;
the data model itself (numbering, routing, link capacities) lives in
:mod:`llmsim_nb.network.topology`.

Every error names the file (or preset) and the key, so a user can fix the
input without reading this code. Besides missing keys and values of the wrong
type, sign or size, a key given twice in one JSON object or YAML mapping is
refused (readers disagree on which value wins), and so is a JSON key that is
not one of ASTRA-sim's (a misspelt optional key would silently default). A
list longer than ``dimensions-count`` is cut and the cut is noted (the seed
files do this); a shorter one is refused.

The formats are read in :mod:`.topology_json` (ASTRA-sim) and
:mod:`.topology_yaml` (ours), both through the strict parsers of
:mod:`.topology_parsing`; this module resolves names and paths to them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from .._presets import preset_entries
from ..config.fields import did_you_mean
from .topology import Dimension, Topology, _check_int
from .topology_json import _GB, _json_topology
from .topology_parsing import _parse_json, _parse_yaml
from .topology_yaml import _yaml_topology


@cache
def _presets() -> dict[str, Any]:
    return preset_entries("networks.yaml")


def list_network_presets() -> list[str]:
    """Names of the network presets (the seed file names without ``.json``), sorted."""
    return sorted(_presets())


def _preset_name(name: str) -> str:
    for ext in (".json", ".yaml", ".yml"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


@cache
def _load_preset(key: str) -> Topology:
    presets = _presets()
    return _yaml_topology(presets[key], f"network preset {key!r}", key,
                          f"llmsim_nb/presets/networks.yaml:{key}")


def load_topology(name_or_path: str | Path) -> Topology:
    """Load a topology from a file or a preset.

    Parameters
    ----------
    name_or_path : str or Path
        A path to an ASTRA-sim analytical JSON file (``.json``) or to our YAML
        format (``.yaml``/``.yml``); or a *bare* name with no directory part
        (``"gpu_n4.json"``, ``"neupims_(4,2)"``), which is looked up in the
        presets. A bare name that is not a preset but names an existing file
        in the working directory is read as a file.

    Returns
    -------
    Topology

    Raises
    ------
    ValueError
        Unknown preset (the message lists the known ones and suggests the
        closest), missing file, or a malformed file (the message names the file
        and the key).
    """
    if isinstance(name_or_path, Topology):
        return name_or_path
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise ValueError(f"network={name_or_path!r} must be a file path or a preset name")
    text = str(name_or_path)
    path = Path(text)
    bare = isinstance(name_or_path, str) and len(path.parts) == 1
    if bare and _preset_name(text) in _presets():
        return _load_preset(_preset_name(text))
    if not path.is_file():
        if bare:
            raise ValueError(f"network={text!r} is neither a known preset nor a file; known "
                             f"presets: {list_network_presets()}"
                             f"{did_you_mean(_preset_name(text), list_network_presets())}")
        raise ValueError(f"network file {text!r} does not exist")
    where = f"network file {str(path)!r}"
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{where}: cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: is not UTF-8 text (byte {err.start})") from None
    if path.suffix.lower() == ".json":
        return _json_topology(_parse_json(raw, where), str(path), path.stem)
    data = _parse_yaml(raw, where)
    if isinstance(data, dict) and "topologies-per-dim" in data:
        return _json_topology(data, str(path), path.stem)
    return _yaml_topology(data, str(path), path.stem, str(path))


#: Dimension-type letters of the seed's fully_connected_<k>d_<n>.json files, by k.
_DEFAULT_TYPES = {1: ("N",), 2: ("N", "P"), 3: ("N", "T", "P"), 4: ("B", "C", "N", "P"),
                  5: ("B", "C", "N", "P", "Q")}


def default_topology(npu_num: int, npu_group: int = 1) -> Topology:
    """The network the original builds when ``--network`` is not given.

    ``fully_connected_{k}d_{npu_num}`` with ``k = log2(npu_group) + 1``:
    dimension 0 is a full mesh of the ``npu_num / npu_group`` devices of one
    pipeline stage (a tensor-parallel group), followed by ``log2(npu_group)``
    full meshes of size 2 that join the stages; every device has one 64 GB/s
    link per peer and links have zero latency (as in the seed files; two of
    them, ``fully_connected_3d_16/32``, use 1 ns).

    Raises
    ------
    ValueError
        If ``npu_group`` is not a power of two dividing ``npu_num``.
    """
    _check_int("default_topology", "npu_num", npu_num, 1)
    _check_int("default_topology", "npu_group", npu_group, 1)
    if npu_group & (npu_group - 1) or npu_num % npu_group:
        raise ValueError(f"default_topology: npu_group={npu_group} must be a power of two "
                         f"dividing npu_num={npu_num}")
    k = npu_group.bit_length()  # log2(npu_group) + 1
    sizes = [npu_num // npu_group] + [2] * (k - 1)
    types = _DEFAULT_TYPES.get(k, ("N",) + ("T",) * (k - 2) + ("P",))
    dims = tuple(Dimension("FullyConnected", s, 64 * _GB, 0.0, max(s - 1, 1), t)
                 for s, t in zip(sizes, types))
    return Topology(dims, name=f"fully_connected_{k}d_{npu_num}",
                    source="default network of LLMServingSim (fully connected, 64 GB/s links)")


__all__ = ["default_topology", "list_network_presets", "load_topology"]
