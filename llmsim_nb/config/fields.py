"""The choices, units, ranges and checks every config field uses.

Each field carries ``metadata`` (:func:`_meta`) with ``help``, ``units`` and its
``llmsim run`` flag name, so widgets, the CLI and documentation are generated
from the dataclasses. Every numeric field also carries ``range`` (the inclusive
``(min, max)`` it may take, in its ``units``), ``range_note`` (what the bound
is about), ``integer`` (whether only ints are accepted) and ``optional``
(whether None is accepted); :func:`_check_number` enforces them and the ranges
below say why each bound is physically defensible.

The checks raise ``ValueError`` on one line that leads with the setting as the
user writes it, ``FLAG=VALUE`` (the ``llmsim run`` flag of the field,
:func:`flag_of`; a field without a flag by its field name), then what is wrong
and what is allowed::

    scheduling='chunkd' is not one of ['orca', 'vllm', 'chunked']; did you mean 'chunked'?
    npu_mem=1e+300 is out of range (must be <= 16384); allowed 0.001 .. 16384 GiB (...)
    npu_num=4.0 must be an integer (a float; integers are never truncated); allowed 1 .. 65536 (...)

Nothing is clamped, truncated or defaulted. An int field refuses a float even
when it is whole (``npu_num: 4.0`` in a YAML file), a float field refuses a
bool, NaN and infinity. :func:`did_you_mean` suggests the closest allowed
names (:func:`difflib.get_close_matches`) when one is close; nothing is ever
corrected automatically.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable
from typing import Any

#: ``auto`` is vllm-v1 on a GPU engine (what vLLM serves today) and orca on the
#: others (the original's default), resolved when the instance is built.
SCHEDULING_POLICIES = ("auto", "orca", "vllm", "chunked", "vllm-v1")
#: Engines that time a GPU (the analytical one and the measured-profile one):
#: where ``auto`` scheduling is vllm-v1.
GPU_ENGINES = ("gpu", "profiled")
REQUEST_ORDERS = ("fcfs", "priority")
PREEMPTION_MODES = ("recompute", "swap")
KV_MANAGE = ("vllm", "max")
PARALLEL = ("tensor", "pipeline", "hybrid")
PIM_TYPES = ("none", "local", "pool")
PIM_MAPPINGS = ("decode-attention", "attention", "fastest")
SUB_BATCH_CRITERIA = ("memory", "compute")
ATTENTION_PLACEMENTS = ("auto", "heads", "requests", "data")
COLLECTIVES = ("auto", "ring", "direct", "halving_doubling")
NPU_MODES = ("analytical", "detailed")
GIB = 1024 ** 3


class ConfigWarning(UserWarning):
    """A setting that is valid but has no effect, or is overridden, in its
    configuration (see :func:`llmsim_nb.config.effects.check_flag_effects`), or
    that another is used in its place (the tensor-parallel attention fallback of
    :meth:`llmsim_nb.parallel.layout.ParallelLayout.from_config`)."""


# ---------------------------------------------------------------------------- ranges
# (min, max) of every numeric field, inclusive, in the field's units. The maxima
# are generous sanity bounds (well above anything that ships or is simulated)
# that keep absurd values from crashing or exhausting memory later; the minima
# are what the quantity physically allows.

#: Requests in one batch (vLLM's max_num_seqs, whose default is 256-1024): 2**20
#: is 1000x that. 0 means unlimited.
MAX_BATCH_RANGE = (0, 2 ** 20)
#: Seconds a request waits before it can be batched: up to one day.
BATCH_DELAY_RANGE = (0.0, 86400.0)
#: Tokens per KV block: vLLM uses 8-32 (some attention backends up to 256);
#: 2**16 tokens is a block as long as a whole long-context request.
BLOCK_SIZE_RANGE = (1, 2 ** 16)
#: Tokens per iteration of the chunked policy: vLLM defaults to 2k-16k; 2**24
#: (16.8M) exceeds the longest context of any model (10M, Llama 4 Scout).
MAX_NUM_BATCHED_TOKENS_RANGE = (1, 2 ** 24)
#: Most prompt tokens one request may compute per iteration (vLLM's
#: long_prefill_token_threshold); 0 = no cap. Bounded as the token budget.
LONG_PREFILL_TOKEN_THRESHOLD_RANGE = (0, 2 ** 24)
#: Host memory for offloaded KV blocks in GiB: servers hold up to ~4-8 TiB of
#: DRAM; 16384 GiB is the device-memory bound's generous cap. 0 = no host tier.
KV_OFFLOAD_GIB_RANGE = (0.0, 16384.0)
#: A device's power cap in W: the largest accelerator TDP shipping is ~1.2 kW
#: (GB200); 100 kW is 80x that. Below 1 W no device runs.
POWER_CAP_W_RANGE = (1.0, 1e5)
#: On-demand price of one device-hour in USD: ~$1-15 today; $10^4 is ~1000x.
DEVICE_PRICE_RANGE = (0.0, 1e4)
#: Grid carbon intensity in g CO2 / kWh: ~10 (hydro) to ~1000 (coal); 10^4 is 10x.
CARBON_RANGE = (0.0, 1e4)
#: Longest request (prompt + output): the longest shipping context window is 10M
#: tokens (Llama 4 Scout); 2**24 = 16.8M.
MAX_MODEL_LEN_RANGE = (1, 2 ** 24)
#: Memory of one device in GiB: the largest device memory shipping is ~288 GB
#: (HBM3E on B300 / MI355X); 16384 GiB (16 TiB) leaves 50x headroom, e.g. for
#: CXL-expanded parts. 0.001 GiB (1 MiB) is below the weights of any model, so
#: smaller values are typos (bytes or MiB given as GiB).
NPU_MEM_RANGE = (0.001, 16384.0)
#: Device-to-host bandwidth in B/s: PCIe 5.0 x16 is 64 GB/s, NVLink-C2C 900 GB/s;
#: 1e15 (1 PB/s) is 1000x that. Below 1e6 (1 MB/s, 1000x slower than any PCIe
#: link) one KV block would take seconds to move.
HOST_BANDWIDTH_RANGE = (1e6, 1e15)
#: Fixed latency of one host transfer in s: microseconds in practice; 1 s is 10^6x.
HOST_LATENCY_RANGE = (0.0, 1.0)
#: Fraction of device memory kept for activations: at most 0.9 leaves 10% for KV.
ACTIVATION_RESERVE_RANGE = (0.0, 0.9)
#: Fraction of device memory used (vLLM's gpu_memory_utilization): above 0 (1%
#: is the smallest that holds anything) and at most all of it.
GPU_MEMORY_UTILIZATION_RANGE = (0.01, 1.0)
#: KV blocks: vLLM's block tables index blocks with int32; 2**31 - 1 blocks of
#: one token are more tokens than 16 TiB holds for any catalog model.
NUM_KV_BLOCKS_RANGE = (1, 2 ** 31 - 1)
#: Devices in one serving system: the largest scale-up domains are NVL576 and
#: TPU v5p pods (8,960 chips); 2**16 = 65,536 is 7x the largest pod and keeps the
#: per-device arrays and topologies small.
NPU_NUM_RANGE = (1, 2 ** 16)
#: Pipeline groups: must divide npu_num, so at most as many.
NPU_GROUP_RANGE = (1, 2 ** 16)
#: Micro-batches per iteration: each holds at least one request, so never more
#: than a batch's requests (MAX_BATCH_RANGE). 0 = one per stage.
MICRO_BATCHES_RANGE = (0, 2 ** 20)
#: Channels per PIM device: an HBM3 stack has 16 channels (32 pseudo-channels),
#: the NeuPIMs preset 32; 1024 (1 TiB of KV per device) is 32x. 0 = the preset's.
PIM_CHANNELS_RANGE = (0, 1024)
#: PIM devices in a pool: must divide npu_num, so at most NPU_NUM_RANGE's maximum.
#: 0 = one per NPU.
PIM_NUM_RANGE = (0, 2 ** 16)
#: Sub-batches per micro-batch: NeuPIMs uses 2; each needs a request, and 1024 is
#: a whole large batch of one-request sub-batches.
NUM_SUB_BATCHES_RANGE = (2, 1024)
#: Random seed: numpy takes any int >= 0, but the seed is stored in the run's
#: Dataset attributes and netCDF holds it as int64.
SEED_RANGE = (0, 2 ** 63 - 1)
#: Which rank holds each expert under expert parallelism (vLLM's
#: --expert-placement-strategy).
EXPERT_PLACEMENTS = ("contiguous", "round_robin")
#: Expert routing models (llmsim_nb.models.expert_routing) selectable by name.
EXPERT_ROUTINGS = ("uniform", "skewed")
#: Zipf exponent of expert popularity: 0 is uniform; at 8 the first expert already
#: has 99.6% of the weight of the rest together, so larger exponents add nothing.
EXPERT_SKEW_RANGE = (0.0, 8.0)
#: Cached operator timings: an entry costs ~100-200 B of host memory, so 10**8
#: entries (100x the default) is at most ~10-20 GiB.
REUSE_CACHE_SIZE_RANGE = (1, 10 ** 8)


def _meta(help: str, units: str = "1", flag: str | None = None, *,
          range: tuple[float, float] | None = None, note: str | None = None,
          integer: bool = False, optional: bool = False,
          positive: bool = False) -> dict[str, Any]:
    """Field metadata; ``range`` (inclusive ``(min, max)``) marks a numeric field.

    ``positive``: the quantity must also be > 0 (it has no meaningful zero),
    reported as such when it is not.
    """
    meta: dict[str, Any] = {"help": help, "units": units, "flag": flag}
    if range is not None:
        meta.update({"range": tuple(range), "range_note": note, "integer": integer,
                     "optional": optional, "positive": positive})
    return meta


def _show(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a one-line message (huge ints and long reprs shortened)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 21:
        exponent = int(math.log10(abs(value)))
        sign = "-" if value < 0 else ""
        return f"~{sign}1e+{exponent} (an integer of {value.bit_length()} bits)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _bound(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


_PLURALS = {"token": "tokens", "block": "blocks", "entry": "entries"}


def range_text(meta: dict[str, Any]) -> str:
    """``'allowed LO .. HI UNITS (NOTE)'`` of a numeric field's metadata."""
    lo, hi = meta["range"]
    units = meta.get("units", "1")
    units = _PLURALS.get(units, units)
    text = f"allowed {_bound(lo)} .. {_bound(hi)}" + ("" if units in ("1", "") else f" {units}")
    note = meta.get("range_note")
    return text + (f" ({note})" if note else "")


def _text_hint(value: Any) -> str:
    """A hint for a number that arrived as text: settings files take plain
    decimal numbers only (``0x10``, ``1_000`` and ``1:30`` stay text)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (text, not a number; write a plain decimal number, e.g. 1000 or 1.0e-3)"
    return ""


def flag_of(f: dataclasses.Field) -> str:
    """The name a user writes for field ``f``: its flag, else its field name."""
    return f.metadata.get("flag") or f.name


def close_matches(word: Any, candidates: Iterable[Any], n: int = 3,
                  cutoff: float = 0.6) -> list[str]:
    """The candidates closest to ``word`` (case-insensitive), best first, as spelled.

    Only string candidates are compared; a ``word`` that is not a string has
    none. ``cutoff`` is :func:`difflib.get_close_matches`'s: 0.6 keeps a
    typo's neighbours (``chunkd`` -> ``chunked``) and drops unrelated names.
    Candidates that ``word`` (three characters or more) begins come first
    (``h100`` -> ``h100-sxm``).
    """
    if not isinstance(word, str) or not word.strip():
        return []
    spelled: dict[str, str] = {}
    for c in candidates:
        if isinstance(c, str):
            spelled.setdefault(c.lower(), c)
    key = word.strip().lower()
    found = difflib.get_close_matches(key, list(spelled), n=n, cutoff=cutoff)
    if len(key) >= 3:
        prefixed = sorted((c for c in spelled if c.startswith(key) and c != key), key=len)
        found = list(dict.fromkeys(prefixed + found))[:n]
    return [spelled[c] for c in found if spelled[c] != word]


def _or_list(names: list[str]) -> str:
    shown = [repr(x) for x in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def suggestion(word: Any, candidates: Iterable[Any], n: int = 3) -> str:
    """``"did you mean 'x'?"`` (``'x' or 'y'``, ``'x', 'y' or 'z'``) when a candidate
    is close to ``word`` (:func:`close_matches`), else ``""``."""
    close = close_matches(word, candidates, n)
    return f"did you mean {_or_list(close)}?" if close else ""


def did_you_mean(word: Any, candidates: Iterable[Any], n: int = 3) -> str:
    """``"; did you mean 'x'?"`` when a candidate is close to ``word``, else ``""``:
    the tail of a one-line error message (see :func:`suggestion`)."""
    hint = suggestion(word, candidates, n)
    return f"; {hint}" if hint else ""


def did_you_mean_each(words: Iterable[Any], candidates: Iterable[Any]) -> str:
    """:func:`did_you_mean` for several unknown names: ``"; did you mean 'npu_num'
    (for 'npus')?"``; only the names that have a close candidate are named."""
    candidates = list(candidates)
    words = list(words)
    if len(words) == 1:
        return did_you_mean(words[0], candidates)
    hints = [f"{_or_list(close)} (for {w!r})" for w in words
             if (close := close_matches(w, candidates))]
    return f"; did you mean {', '.join(hints)}?" if hints else ""


def _check_number(name: str, value: Any, meta: dict[str, Any]) -> None:
    """Check a numeric setting against its metadata: type, sign, range.

    ``name`` is what the message leads with (the flag, see :func:`flag_of`).
    """
    if value is None and meta.get("optional"):
        return
    lo, hi = meta["range"]
    allowed = range_text(meta)
    shown = f"{name}={_show(value)}"
    if meta.get("integer"):
        if isinstance(value, bool) or not isinstance(value, int):
            hint = (" (a float; integers are never truncated)"
                    if isinstance(value, float) and value.is_integer() else "")
            raise ValueError(f"{shown} must be an integer{hint or _text_hint(value)}; "
                             f"{allowed}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{shown} must be a finite number{_text_hint(value)}; {allowed}")
    if meta.get("positive") and value <= 0:
        zero = 0.0 if isinstance(lo, float) else 0
        raise ValueError(f"{shown} is out of range (must be > {zero}); {allowed}")
    if value < lo:
        raise ValueError(f"{shown} is out of range (must be >= {_bound(lo)}); {allowed}")
    if value > hi:
        raise ValueError(f"{shown} is out of range (must be <= {_bound(hi)}); {allowed}")


def _check_numbers(obj: Any) -> None:
    """Check every numeric field (those with a ``range``) of a config dataclass."""
    for f in dataclasses.fields(obj):
        if "range" in f.metadata:
            _check_number(flag_of(f), getattr(obj, f.name), f.metadata)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """``value`` must be one of ``allowed``; the message suggests the closest."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={_show(value)} is not one of {list(allowed)}"
                         f"{did_you_mean(value, allowed)}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={_show(value)} must be a bool")
