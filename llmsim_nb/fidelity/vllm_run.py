"""A measured vLLM run: per-request engine timestamps plus the engine's settings.

A run directory holds ``requests.csv`` (one row per request: ``input_toks``,
``output_toks``, and vLLM's ``RequestStateStats`` timestamps ``queued_ts``,
``first_token_ts``, ``last_token_ts`` on one monotonic clock) and ``meta.json``
(``engine_kwargs``, ``kv_cache``, ``hardware``, ``vllm_version``). From them
:func:`load_vllm_run` builds

- the measured requests (:func:`~.validate.load_measured_requests`'s columns),
  timed from ``queued_ts``: the engine's clock starts when the request reaches
  the engine core, after the API server has tokenised it;
- the trace (arrivals ``queued_ts - min(queued_ts)``, the token counts);
- the ``llmsim run`` flags of the settings the run recorded: model, hardware
  (by device name), ``max_num_seqs``, ``max_num_batched_tokens``,
  ``max_model_len``, block size, prefix caching, chunked prefill, the KV blocks
  vLLM allocated, and the serving stack of its engine (``vllm-v1`` for 0.11+).

Since the measured clock starts after tokenising, the simulated requests are
compared from the same point (:func:`engine_clock_requests`: arrival plus the
stack's ``arrival_latency``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..engines.serving_stack import get_serving_stack
from ..workload.trace import Trace

#: Device names vLLM records (torch.cuda.get_device_name) -> hardware preset.
DEVICE_PRESETS = {"NVIDIA GeForce RTX 4090": "rtx4090", "NVIDIA GeForce RTX 3090": "rtx3090",
                  "NVIDIA A100-SXM4-80GB": "a100-80gb", "NVIDIA A100-SXM4-40GB": "a100-40gb",
                  "NVIDIA H100 80GB HBM3": "h100-sxm", "NVIDIA H200": "h200",
                  "NVIDIA L40S": "l40s"}
_COLUMNS = ("input_toks", "output_toks", "queued_ts", "first_token_ts", "last_token_ts")


@dataclass(frozen=True, eq=False)
class VLLMRun:
    """A measured vLLM run (see the module docstring).

    Attributes
    ----------
    measured : pandas.DataFrame
        ``arrival``, ``first_token``, ``finish`` (s, from the first queued
        request), ``num_prompt_tokens``, ``num_output_tokens``.
    trace : Trace
    flags : dict
        ``llmsim run`` flags of the recorded settings.
    meta : dict
        ``meta.json`` as read.
    """

    measured: pd.DataFrame
    trace: Trace
    flags: dict
    meta: dict


def _major_minor(version: str) -> tuple[int, int]:
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        raise ValueError(f"meta.json: vllm_version={version!r} is not a version like "
                         f"'0.19.0'") from None


def _flags(meta: dict, path: Path) -> dict:
    kwargs, kv = meta.get("engine_kwargs") or {}, meta.get("kv_cache") or {}
    device = (meta.get("hardware") or {}).get("device_name")
    if device not in DEVICE_PRESETS:
        raise ValueError(f"{path}: device {device!r} has no hardware preset here (known: "
                         f"{sorted(DEVICE_PRESETS)}); pass --hardware")
    if kwargs.get("tensor_parallel_size", 1) != 1 or kwargs.get("data_parallel_size", 1) != 1:
        raise ValueError(f"{path}: only single-GPU runs are read (tensor_parallel_size and "
                         f"data_parallel_size 1)")
    v1 = _major_minor(str(meta.get("vllm_version", ""))) >= (0, 11)
    scheduler = (meta.get("resolved_config") or {}).get("scheduler_config") or {}
    flags = {"model_name": kwargs["model"], "hardware": DEVICE_PRESETS[device],
             "scheduling": "vllm-v1" if v1 else "vllm",
             "serving_stack": "vllm-v1" if v1 else "vllm-v0",
             "max_batch": kwargs.get("max_num_seqs"),
             "max_num_batched_tokens": kwargs.get("max_num_batched_tokens"),
             "max_model_len": kwargs.get("max_model_len"),
             "block_size": kv.get("block_size"), "num_kv_blocks": kv.get("num_gpu_blocks")}
    if v1:
        caching = kv.get("enable_prefix_caching")
        flags["enable_prefix_caching"] = None if caching is None else bool(caching)
        chunked = scheduler.get("enable_chunked_prefill")
        flags["enable_chunked_prefill"] = None if chunked is None else bool(chunked)
        reserve = scheduler.get("scheduler_reserve_full_isl")
        flags["scheduler_reserve_full_isl"] = None if reserve is None else bool(reserve)
    return {k: v for k, v in flags.items() if v is not None}


def load_vllm_run(directory: str | Path) -> VLLMRun:
    """Read ``requests.csv`` and ``meta.json`` of a vLLM run directory.

    Raises
    ------
    ValueError
        One line naming the file: missing, not JSON, a missing column, times out
        of order, a device without a preset.
    """
    directory = Path(directory)
    csv, meta_path = directory / "requests.csv", directory / "meta.json"
    for path in (csv, meta_path):
        if not path.is_file():
            raise ValueError(f"vLLM run {str(directory)!r} has no {path.name}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta_path}: not valid JSON ({str(exc).splitlines()[0]})") from None
    frame = pd.read_csv(csv)
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{csv}: missing column(s) {missing}; a vLLM run has {list(_COLUMNS)}")
    frame = frame.sort_values("queued_ts", kind="stable").reset_index(drop=True)
    values = frame[list(_COLUMNS)].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{csv}: every {list(_COLUMNS)} cell must be a finite number")
    origin = float(frame["queued_ts"].min())
    measured = pd.DataFrame({"arrival": frame["queued_ts"] - origin,
                             "first_token": frame["first_token_ts"] - origin,
                             "finish": frame["last_token_ts"] - origin,
                             "num_prompt_tokens": frame["input_toks"].astype(float),
                             "num_output_tokens": frame["output_toks"].astype(float)})
    bad = ~((measured["arrival"] <= measured["first_token"])
            & (measured["first_token"] <= measured["finish"]))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{csv}: request {frame.iloc[i].get('request_id', i)!r} needs "
                         f"queued_ts <= first_token_ts <= last_token_ts")
    trace = Trace(measured["arrival"].to_numpy(), frame["input_toks"].to_numpy(),
                  frame["output_toks"].to_numpy(), source=str(csv))
    return VLLMRun(measured, trace, _flags(meta, meta_path), meta)


def engine_clock_requests(ds: xr.Dataset) -> pd.DataFrame:
    """A run's requests timed as vLLM's engine records them: from when a request
    reaches the scheduler (``arrival_at`` plus the serving stack's
    ``arrival_latency``), the columns of :func:`~.validate.simulated_requests`."""
    from .validate import simulated_requests

    frame = simulated_requests(ds)
    stack = get_serving_stack(str(ds.attrs.get("serving_stack", "none")))
    frame["arrival"] = frame["arrival"] + stack.arrival_latency
    return frame


__all__ = ["DEVICE_PRESETS", "VLLMRun", "engine_clock_requests", "load_vllm_run"]
