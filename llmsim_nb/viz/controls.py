"""Dashboard controls described from the config dataclasses' field metadata.

Pure Python (no widget toolkit): :func:`control_specs` turns the ``help``,
``units`` and ``flag`` metadata of :mod:`llmsim_nb.config`'s fields (and of
:class:`WorkloadConfig` here) into :class:`ControlSpec` records, from which
:mod:`llmsim_nb.viz.dashboard` makes ipywidgets. A new config field with a
``flag`` shows up in the dashboard by adding its flag to
:data:`DASHBOARD_FLAGS`; its label, tooltip, type and default come from the
dataclass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import config as cfg
from ..config import FLAG_FIELDS, MemoryConfig, SchedulerConfig, SimConfig, SystemConfig

#: Config flags the dashboard shows, in display order.
DASHBOARD_FLAGS = ("model_name", "hardware", "npu_num", "parallel", "npu_group", "npu_mem",
                   "block_size", "scheduling", "max_num_batched_tokens", "enable_prefix_caching",
                   "kv_offload_gib", "max_batch", "pim_type", "sub_batch")

#: Flags shown after :data:`DASHBOARD_FLAGS` only where ``llmsim_nb.config`` has
#: them (the ``serving_stack`` dropdown, options in :data:`CHOICES`, was added
#: this way while that field was being written; a new optional flag goes here).
OPTIONAL_FLAGS = ("serving_stack",)

#: Options of a ``switch`` control (a ``bool | None`` field): "auto" is None,
#: the policy's own choice (e.g. prefix caching is on for vllm-v1 only).
SWITCH_OPTIONS = ("auto", "on", "off")

#: Workload kinds: two generated ones, and "file": ``trace_file`` (a packaged
#: trace's name or a path) read with :func:`~llmsim_nb.workload.load_trace`.
TRACE_KINDS = ("sharegpt-like", "alpaca-like", "file")
GENERATED_KINDS = TRACE_KINDS[:2]

#: The most requests a dashboard trace may hold (an interactive view; a
#: bigger workload is a job for ``Simulator`` or ``sweep``).
MAX_REQUESTS = 1_000_000


def _models() -> list[str]:
    from ..models.catalog import list_models

    return list_models()


def _hardware() -> list[str]:
    from ..engines.hardware import list_hardware

    return list_hardware()


#: Allowed values of the string fields that are choices (callables: read when asked,
#: so models registered or presets added later appear).
CHOICES: dict[str, Callable[[], list[str]] | tuple[str, ...]] = {
    "model_name": _models, "hardware": _hardware, "scheduling": cfg.SCHEDULING_POLICIES,
    "kv_manage": cfg.KV_MANAGE, "parallel": cfg.PARALLEL, "pim_type": cfg.PIM_TYPES,
    "attention_placement": cfg.ATTENTION_PLACEMENTS, "collective": cfg.COLLECTIVES,
    "npu_mode": cfg.NPU_MODES, "trace": TRACE_KINDS,
}


def _serving_stacks() -> list[str]:
    from ..engines.serving_stack import list_serving_stacks

    return ["auto", *list_serving_stacks()]


# The serving-stack dropdown: "auto" (the config's default: vllm-v1 on a GPU
# preset, none elsewhere) and every registered stack, read when asked.
CHOICES["serving_stack"] = _serving_stacks


def dashboard_flags() -> tuple[str, ...]:
    """:data:`DASHBOARD_FLAGS` plus those of :data:`OPTIONAL_FLAGS` the config has."""
    return DASHBOARD_FLAGS + tuple(f for f in OPTIONAL_FLAGS if f in FLAG_FIELDS)


def _meta(help: str, units: str = "1", flag: str | None = None) -> dict[str, Any]:
    return {"help": help, "units": units, "flag": flag}


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """The workload the dashboard serves (not part of ``SimConfig``).

    A generated kind is ``synthetic_trace(numpy.random.default_rng(seed),
    num_requests, arrival_rate, *lengths)`` with the config's seed; the default
    (ShareGPT-like, 100 requests at 10/s, seed 0) is the packaged default
    trace's recipe. ``trace="file"`` reads ``trace_file`` (a packaged trace's
    name such as ``"sharegpt-like-100"``, or a path) and keeps its first
    ``num_requests`` requests; its arrivals are the file's, so ``arrival_rate``
    is not used (the dashboard greys that control out).
    """

    trace: str = field(default="sharegpt-like", metadata=_meta(
        "Workload: generated sharegpt-like (long chats) or alpaca-like (short "
        "instructions) lengths, from the team's traces; or 'file' (trace_file)", flag="trace"))
    trace_file: str = field(default="", metadata=_meta(
        "With trace='file': a packaged trace (list_packaged_traces(), e.g. sharegpt-like-100) "
        "or a trace file path (TSV, CSV, JSONL)", flag="trace_file"))
    num_requests: int = field(default=100, metadata=_meta(
        "Requests in the trace (with trace='file': its first N)", "1", flag="num_requests"))
    arrival_rate: float = field(default=10.0, metadata=_meta(
        "Mean Poisson arrival rate of a generated trace", "req/s", flag="arrival_rate"))

    def __post_init__(self) -> None:
        if self.trace not in TRACE_KINDS:
            raise ValueError(f"trace={self.trace!r} is not one of {list(TRACE_KINDS)}")
        if not isinstance(self.trace_file, str):
            raise ValueError(f"trace_file={self.trace_file!r} must be text (a packaged trace's "
                             f"name or a path)")
        if self.trace == "file" and not self.trace_file.strip():
            raise ValueError("trace='file' needs trace_file: a packaged trace's name (e.g. "
                             "sharegpt-like-100) or a trace file path")
        if self.trace != "file" and self.trace_file.strip():
            raise ValueError(f"trace_file={self.trace_file!r} is read only with trace='file' "
                             f"(trace={self.trace!r} is generated); choose trace 'file' or "
                             f"clear trace_file")
        n = self.num_requests
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"num_requests must be an integer >= 1, got {n!r}")
        if n > MAX_REQUESTS:
            raise ValueError(f"num_requests must be <= {MAX_REQUESTS} in the dashboard, got "
                             f"{n!r}; simulate bigger workloads with Simulator or sweep")
        r = self.arrival_rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) \
                or r <= 0:
            raise ValueError(f"arrival_rate must be a finite number > 0 req/s, got {r!r}")

    def make_trace(self, seed: int):
        """The trace: generated from ``numpy.random.default_rng(seed)``, or the
        first ``num_requests`` of ``trace_file`` (more than it holds is an error)."""
        from ..workload import alpaca_like, load_trace, sharegpt_like, synthetic_trace

        if self.trace == "file":
            trace = load_trace(self.trace_file.strip())
            if self.num_requests > len(trace):
                raise ValueError(f"num_requests={self.num_requests} but trace_file="
                                 f"{self.trace_file.strip()!r} holds {len(trace)} requests; "
                                 f"ask for at most {len(trace)}")
            return trace.head(self.num_requests)
        prompt, output = sharegpt_like() if self.trace == "sharegpt-like" else alpaca_like()
        return synthetic_trace(np.random.default_rng(seed), self.num_requests,
                               float(self.arrival_rate), prompt=prompt, output=output)


WORKLOAD_FLAGS = tuple(f.metadata["flag"] for f in dataclasses.fields(WorkloadConfig))


@dataclass(frozen=True, slots=True)
class ControlSpec:
    """What a widget for one flag needs.

    Attributes
    ----------
    flag : str
        ``SimConfig.from_flags`` name (or a :class:`WorkloadConfig` field).
    kind : {"choice", "int", "float", "optional_float", "bool", "switch", "text"}
        ``optional_float``: blank means None (take the default, e.g. the
        hardware preset's memory). ``switch``: a ``bool | None`` field shown
        as :data:`SWITCH_OPTIONS` (``auto`` is None, the policy's default).
    default : Any
    help, units : str
        From the field's metadata.
    options : tuple of str
        Allowed values of a ``choice`` or a ``switch``.
    """

    flag: str
    kind: str
    default: Any
    help: str
    units: str
    options: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.flag + ("" if self.units in ("1", "") else f" [{self.units}]")


_SECTIONS = {None: SimConfig, "scheduler": SchedulerConfig, "memory": MemoryConfig,
             "system": SystemConfig}


def _field(flag: str) -> dataclasses.Field:
    if flag in WORKLOAD_FLAGS:
        return next(f for f in dataclasses.fields(WorkloadConfig) if f.metadata["flag"] == flag)
    if flag not in FLAG_FIELDS:
        raise ValueError(f"{flag!r} is not a config flag; known: {sorted(FLAG_FIELDS)} "
                         f"and {list(WORKLOAD_FLAGS)}")
    section, name = FLAG_FIELDS[flag]
    return next(f for f in dataclasses.fields(_SECTIONS[section]) if f.name == name)


def _kind(flag: str, f: dataclasses.Field) -> str:
    if flag in CHOICES:
        return "choice"
    # Annotations are strings (``from __future__ import annotations`` in config.py).
    kinds = {"int": "int", "float": "float", "bool": "bool", "float | None": "optional_float",
             "bool | None": "switch", "str": "text"}
    ftype = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if ftype not in kinds:
        raise ValueError(f"flag {flag!r} has type {ftype!r}, which the dashboard cannot "
                         f"show; it handles {sorted(kinds)} and choices {sorted(CHOICES)}")
    return kinds[ftype]


def control_spec(flag: str) -> ControlSpec:
    """The :class:`ControlSpec` of one flag, read from its dataclass field."""
    f = _field(flag)
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    kind = _kind(flag, f)
    options: tuple[str, ...] = ()
    if kind == "choice":
        found = CHOICES[flag]
        options = tuple(found() if callable(found) else found)
    elif kind == "switch":
        options = SWITCH_OPTIONS
    return ControlSpec(flag, kind, default, f.metadata.get("help", ""),
                       f.metadata.get("units", "1"), options)


def control_specs(flags: tuple[str, ...] | None = None) -> list[ControlSpec]:
    """Specs of ``flags`` in order (default: :func:`dashboard_flags`, then the workload's)."""
    if flags is None:
        flags = dashboard_flags() + WORKLOAD_FLAGS
    return [control_spec(flag) for flag in flags]


def split_values(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split control values into ``SimConfig.from_flags`` flags and WorkloadConfig fields."""
    flags = {k: v for k, v in values.items() if k not in WORKLOAD_FLAGS}
    workload = {k: v for k, v in values.items() if k in WORKLOAD_FLAGS}
    return flags, workload


def parse_optional_float(flag: str, text: str) -> float | None:
    """Blank -> None; a finite number -> float; otherwise a ValueError naming the
    flag and the text (NaN and infinity are refused here, not passed on)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{flag}={text!r} must be text holding a number, or blank for the "
                         f"default")
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{flag}={text!r} is not a number (leave it blank for the "
                         "default)") from None
    if not math.isfinite(value):
        raise ValueError(f"{flag}={text!r} must be a finite number (leave it blank for the "
                         f"default)")
    return value


def switch_text(flag: str, value: Any) -> str:
    """A ``switch`` control's option for ``value``: None -> "auto", True /
    "on" -> "on", False / "off" -> "off"; anything else a one-line ValueError
    naming the flag (nothing is guessed)."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and value in SWITCH_OPTIONS:
        return value
    raise ValueError(f"{flag}={value!r} is not one of {list(SWITCH_OPTIONS)} (or True, "
                     f"False, None)")


def parse_switch(flag: str, text: Any) -> bool | None:
    """A ``switch`` control's option as its field value: "auto" -> None (the
    policy's default), "on" -> True, "off" -> False; anything else a one-line
    ValueError naming the flag."""
    if not isinstance(text, str) or text not in SWITCH_OPTIONS:
        raise ValueError(f"{flag}={text!r} is not one of {list(SWITCH_OPTIONS)}")
    return None if text == "auto" else text == "on"
