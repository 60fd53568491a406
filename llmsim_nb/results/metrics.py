"""Headline figures of a run (:func:`summarize`) and what each one means.

The latency and throughput figures are defined as vLLM's
``benchmarks/benchmark_serving.py`` defines them, per request from the
request variables of the run:

- TTFT = ``first_token_at - arrival_at``;
- E2E = ``finished_at - arrival_at``;
- TPOT = ``(E2E - TTFT) / (num_output_tokens - 1)``, NaN for a request with
  fewer than two output tokens (left out of the TPOT statistics);
- ITL: every gap between two consecutive output tokens of a request
  (variable ``inter_token_latency``, dim ``token_gap``), pooled over requests.

Times are seconds here (benchmark_serving prints milliseconds: its
``mean_ttft_ms`` is ``1e3 * ttft_mean``). :func:`metric_definitions` gives
each key's definition, units and benchmark_serving name, for callers to keep
beside the numbers.

Everything is computed on plain numpy values, so :func:`summarize` takes a
run Dataset or an :class:`~llmsim_nb.results.dataset.ArrayResults` (the CLI's
summary, no xarray), and Datasets written before a variable existed (the
figures that need it are then NaN, or 0 for counts).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from .energy import ENERGY_METRICS, energy_totals
from .quantiles import all_finite, percentiles

# key: (units, definition, vLLM name). Order: the order summarize returns.
_METRICS: dict[str, tuple[str, str, str]] = {
    "num_requests": ("1", "requests in the run", ""),
    "num_finished": ("1", "requests finished (finite finished_at)",
                     "benchmark_serving completed"),
    "num_iterations": ("1", "iterations simulated", ""),
    "simulated_time": ("s", "end of the last iteration, from simulated time 0 (the "
                            "duration every rate below divides by)",
                       "benchmark_serving duration"),
    "prompt_throughput": ("token/s", "prompt tokens computed (num_prefill_tokens, prefix-cache "
                                     "hits excluded) over simulated_time, as LLMServingSim's "
                                     "average throughput", ""),
    "generation_throughput": ("token/s", "decode tokens computed (num_decode_tokens) over "
                                         "simulated_time, as LLMServingSim's average throughput",
                              ""),
    "ttft_mean": ("s", "mean TTFT = first_token_at - arrival_at over requests with a first "
                       "token", "benchmark_serving mean_ttft_ms (ms)"),
    "ttft_p50": ("s", "median TTFT", "benchmark_serving median_ttft_ms (ms)"),
    "ttft_p99": ("s", "99th percentile TTFT (linear interpolation)",
                 "benchmark_serving p99_ttft_ms (ms)"),
    "tpot_mean": ("s", "mean TPOT = (E2E - TTFT) / (num_output_tokens - 1) over finished "
                       "requests with at least two output tokens",
                  "benchmark_serving mean_tpot_ms (ms)"),
    "tpot_p50": ("s", "median TPOT", "benchmark_serving median_tpot_ms (ms)"),
    "tpot_p99": ("s", "99th percentile TPOT", "benchmark_serving p99_tpot_ms (ms)"),
    "e2e_mean": ("s", "mean E2E = finished_at - arrival_at over finished requests",
                 "benchmark_serving mean_e2el_ms (ms)"),
    "e2e_p50": ("s", "median E2E", "benchmark_serving median_e2el_ms (ms)"),
    "e2e_p99": ("s", "99th percentile E2E", "benchmark_serving p99_e2el_ms (ms)"),
    "kv_usage_peak": ("1", "largest fraction of KV blocks in use after an iteration's "
                           "allocation", ""),
    "num_evictions": ("1", "requests swapped out to host memory (num_evicted), summed over "
                           "iterations; 0 for vllm-v1, which preempts by recompute", ""),
    "itl_mean": ("s", "mean inter-token latency over every gap between consecutive output "
                      "tokens of every request (NaN without inter_token_latency)",
                 "benchmark_serving mean_itl_ms (ms)"),
    "itl_p50": ("s", "median inter-token latency", "benchmark_serving median_itl_ms (ms)"),
    "itl_p99": ("s", "99th percentile inter-token latency",
                "benchmark_serving p99_itl_ms (ms)"),
    "prefix_hit_rate": ("1", "tokens found in the prefix cache over tokens looked up, summed "
                             "over the run's first admissions (re-admissions after a preemption "
                             "are kept out, as vLLM counts them apart); NaN without lookups",
                        "vLLM V1 prefix cache hit rate: vllm:prefix_cache_hits / "
                        "vllm:prefix_cache_queries"),
    "num_cached_tokens": ("token", "tokens found in the prefix cache, summed over iterations "
                                   "(num_prefix_cached_tokens; the per-request variable "
                                   "num_cached_tokens counts first admissions only)",
                          "vllm:prefix_cache_hits"),
    "num_preemptions": ("1", "preemptions by recompute, summed over iterations "
                             "(num_preempted)", "vllm:num_preemptions"),
    "num_host_cached_tokens": ("token", "of num_cached_tokens, those found in vllm-v1's "
                                        "host-memory tier and loaded back instead of computed "
                                        "(num_host_cached_tokens, summed over iterations; 0 "
                                        "without kv_offload_gib)", ""),
    "host_stored_bytes": ("B", "KV bytes stored to host memory (evicted_bytes, summed over "
                               "iterations): swapped-out requests (orca / vllm / chunked) or "
                               "copies of cached blocks into the host tier (vllm-v1)", ""),
    "host_loaded_bytes": ("B", "KV bytes loaded from host memory (reloaded_bytes, summed over "
                               "iterations): swapped-in requests (orca / vllm / chunked) or "
                               "host-tier prefix hits (vllm-v1)", ""),
    "request_throughput": ("1/s", "finished requests over simulated_time",
                           "benchmark_serving request_throughput (req/s)"),
    "output_throughput": ("token/s", "output tokens of the finished requests "
                                     "(num_output_tokens) over simulated_time",
                          "benchmark_serving output_throughput (tok/s)"),
    "goodput_fraction": ("1", "fraction of finished requests meeting every SLO given: TTFT <= "
                              "slo_ttft (a request without a first token does not meet it) "
                              "and TPOT <= slo_tpot (a request with one output token has no "
                              "TPOT and meets it trivially); NaN without an SLO",
                         "benchmark_serving request_goodput / request_throughput"),
    "goodput": ("1/s", "finished requests meeting every SLO given (as goodput_fraction) over "
                       "simulated_time; NaN without an SLO",
                "benchmark_serving request_goodput (req/s, --goodput ttft:MS tpot:MS)"),
}

#: ``{key: (units, definition)}`` of every figure :func:`summarize` returns.
_METRICS.update({k: (u, d, "") for k, (u, d) in ENERGY_METRICS.items()})  # power model
METRIC_UNITS: dict[str, tuple[str, str]] = {k: (u, d) for k, (u, d, _) in _METRICS.items()}


def metric_definitions() -> dict[str, str]:
    """What each key of :func:`summarize` means.

    Returns
    -------
    dict of str to str
        ``{key: "definition [units]; vLLM: name"}`` in the order of
        :func:`summarize`'s keys; the vLLM part (a ``benchmark_serving``
        result key, or a Prometheus metric) is left out for figures that have
        no counterpart there.
    """
    return {key: f"{definition} [{units}]" + (f"; vLLM: {vllm}" if vllm else "")
            for key, (units, definition, vllm) in _METRICS.items()}


def check_slo(name: str, value) -> float | None:
    """``value`` as a service-level objective: None, or a float of seconds.

    Parameters
    ----------
    name : str
        The argument's name, for the message (``slo_ttft``, ``slo_tpot``).
    value : float or None

    Returns
    -------
    float or None

    Raises
    ------
    ValueError
        If ``value`` is not None nor a finite number > 0 (a bool is refused).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0 or None, "
                         f"got {value!r}")
    return float(value)


def _values(ds, name: str) -> np.ndarray | None:
    """``ds[name]``'s numpy values, or None where ``ds`` has no such variable."""
    return ds[name].values if name in ds else None


def _finite(values: np.ndarray | None) -> np.ndarray:
    """The finite values: ``values`` itself (no copy) when all are finite, as
    a run's inter-token gaps are (half a gigabyte for a million requests)."""
    if values is None:
        return np.zeros(0)
    values = np.ascontiguousarray(values, dtype=np.float64)
    return values if all_finite(values) else values[np.isfinite(values)]


def _pct(values: np.ndarray | None, q: float) -> float:
    return percentiles(_finite(values), [q])[0]  # NaN when none is finite


def _mean(values: np.ndarray | None) -> float:
    values = _finite(values)
    return float(values.mean()) if len(values) else math.nan


def _total(ds, name: str) -> int:
    values = _values(ds, name)
    return int(values.sum()) if values is not None else 0


def _sum(ds, name: str) -> float:
    values = _values(ds, name)
    return float(np.asarray(values, dtype=np.float64).sum()) if values is not None else 0.0


def summarize(ds, *, slo_ttft: float | None = None,
              slo_tpot: float | None = None, band=None) -> dict[str, float]:
    """Headline figures of a run (see :func:`metric_definitions` for each key).

    Prompt / generation throughput are prompt tokens and decode tokens over the
    whole simulated time, as LLMServingSim's "Average throughput" line; the
    request, output and goodput rates and the TTFT / TPOT / ITL / E2E
    statistics are those of vLLM's ``benchmark_serving`` (in seconds).
    Computed on the numpy values (NaN-skipping, as xarray's reductions), which
    keeps the CLI from importing dask.array for xarray's reductions.

    Parameters
    ----------
    ds : xarray.Dataset or ArrayResults
        A run's results (``Simulator.run()``, ``Instance.result_arrays()``,
        or a Dataset loaded from a file, older ones included).
    slo_ttft, slo_tpot : float, optional
        Service-level objectives in seconds (finite, > 0) for ``goodput`` and
        ``goodput_fraction``: a finished request is good when its TTFT is at
        most ``slo_ttft`` and its TPOT at most ``slo_tpot`` (an SLO not given
        is not checked; a request with one output token has no TPOT and meets
        ``slo_tpot`` trivially, as in benchmark_serving; one without any output
        token has no TTFT and does not meet ``slo_ttft``).
    band : xarray.Dataset, optional
        An error band of the same configuration
        (:func:`llmsim_nb.fidelity.error_band.error_band`): its quantiles of
        each figure are kept in ``attrs["band"]`` (``{key: (p10, p50, p90)}``
        with the default quantiles, listed in ``attrs["band_quantiles"]``).

    Returns
    -------
    Summary
        A ``dict`` of str to float with the keys of :func:`metric_definitions`,
        in that order, and ``attrs`` holding their definitions and the SLOs. ``itl_*`` are
        NaN without ``inter_token_latency``, ``prefix_hit_rate`` NaN without
        prefix-cache lookups, the goodput figures NaN without an SLO; the
        counts and byte totals are 0 for a Dataset written before their
        variable existed.

    Raises
    ------
    ValueError
        If ``slo_ttft`` or ``slo_tpot`` is not None nor a finite number > 0.
    """
    slo_ttft = check_slo("slo_ttft", slo_ttft)
    slo_tpot = check_slo("slo_tpot", slo_tpot)
    duration = float(np.nanmax(ds["t_end"].values)) if ds.sizes.get("iteration", 0) else 0.0

    def rate(amount: float) -> float:
        return amount / duration if duration else math.nan

    ttft, tpot, e2e = ds["ttft"].values, ds["tpot"].values, ds["e2e_latency"].values
    prompt = float(ds["num_prefill_tokens"].values.sum())
    decode = float(ds["num_decode_tokens"].values.sum())
    done = np.isfinite(ds["finished_at"].values)
    num_finished = int(done.sum())
    summary = {
        "num_requests": int(ds.sizes["request"]),
        "num_finished": num_finished,
        "num_iterations": int(ds.sizes["iteration"]),
        "simulated_time": duration,
        "prompt_throughput": rate(prompt),
        "generation_throughput": rate(decode),
        "ttft_mean": _mean(ttft), "ttft_p50": _pct(ttft, 50), "ttft_p99": _pct(ttft, 99),
        "tpot_mean": _mean(tpot), "tpot_p50": _pct(tpot, 50), "tpot_p99": _pct(tpot, 99),
        "e2e_mean": _mean(e2e), "e2e_p50": _pct(e2e, 50), "e2e_p99": _pct(e2e, 99),
        "kv_usage_peak": float(np.nanmax(ds["kv_usage"].values)) if duration else 0.0,
        "num_evictions": int(ds["num_evicted"].values.sum()),
    }
    # The gaps are read once for the mean and both percentiles (no sorted copy).
    itl = _finite(_values(ds, "inter_token_latency"))
    summary["itl_mean"] = float(itl.mean()) if len(itl) else math.nan
    summary["itl_p50"], summary["itl_p99"] = percentiles(itl, [50, 99])
    queried = _total(ds, "num_prefix_query_tokens")
    cached = _total(ds, "num_prefix_cached_tokens")
    summary["prefix_hit_rate"] = cached / queried if queried else math.nan
    summary["num_cached_tokens"] = cached
    summary["num_preemptions"] = _total(ds, "num_preempted")
    summary["num_host_cached_tokens"] = _total(ds, "num_host_cached_tokens")
    summary["host_stored_bytes"] = _sum(ds, "evicted_bytes")
    summary["host_loaded_bytes"] = _sum(ds, "reloaded_bytes")
    summary["request_throughput"] = rate(num_finished)
    summary["output_throughput"] = rate(float(ds["num_output_tokens"].values[done].sum()))
    if slo_ttft is None and slo_tpot is None:
        summary["goodput_fraction"] = summary["goodput"] = math.nan
    else:
        good = np.ones(num_finished, dtype=bool)
        if slo_ttft is not None:
            good &= ttft[done] <= slo_ttft            # NaN (no first token): not met
        if slo_tpot is not None:
            good &= ~(tpot[done] > slo_tpot)          # NaN (one output token): met
        num_good = int(good.sum())
        summary["goodput_fraction"] = num_good / num_finished if num_finished else math.nan
        summary["goodput"] = rate(num_good)
    summary.update(energy_totals(ds, duration))
    out = Summary(summary)
    out.attrs = {"definitions": metric_definitions(), "slo_ttft": slo_ttft,
                 "slo_tpot": slo_tpot, "time_units": "s"}
    if band is not None:
        if "quantile" not in getattr(band, "dims", ()):
            raise ValueError("summarize: band must be an error_band() Dataset (with a "
                             f"'quantile' dim), got {type(band).__name__}")
        out.attrs["band_quantiles"] = tuple(float(q) for q in band["quantile"].values)
        out.attrs["band"] = {k: tuple(float(v) for v in band[k].values) for k in _METRICS
                             if k in band and band[k].dims == ("quantile",)}
    return out


class Summary(dict):
    """:func:`summarize`'s figures (a plain ``dict`` of key -> value), with ``attrs``:
    each key's definition, units and vLLM name (``attrs["definitions"]``, from
    :func:`metric_definitions`) and the SLOs applied."""

    attrs: dict


__all__ = ["METRIC_UNITS", "Summary", "check_slo", "metric_definitions", "summarize"]
