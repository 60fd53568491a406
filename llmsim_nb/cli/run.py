"""``llmsim run``: simulate a trace and print a summary.

The flags are the original LLMServingSim's parameter names (``--model_name
--npu_num --max_batch --batch_delay --scheduling --parallel --npu_group
--npu_mem --kv_manage --block_size --pim_type --sub_batch --dataset --network
--output --gen --fast_run``) plus ours (``--hardware``,
``--max_num_batched_tokens``, ``--seed``, ``--config file.yaml``...), whose
help shows the config dataclasses' defaults and ranges, and the workload
flags (:data:`WORKLOAD_FLAGS`): generate a trace instead of reading
``--dataset`` (``--num_requests --arrival --rate --cv --lengths``, drawn from
``--seed``; :class:`~llmsim_nb.workload.recipe.WorkloadRecipe`), and cut or
fix the trace before it is simulated (``--limit --drop_too_long --sort``).
The simulator is imported only when the command runs, so ``llmsim --help``
stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time
import warnings

from ..config import SimConfig
from .prefix_workloads import check_session_lengths, check_slos, prefix_workload
from .run_flags import GENERATE_FLAGS, RUN_FLAGS, WORKLOAD_FLAGS
from .summary import format_summary


def _config_fields() -> dict:
    """``flag -> dataclasses.Field`` of every config flag (through ``FLAG_FIELDS``)."""
    import dataclasses

    from ..config import FLAG_FIELDS, MemoryConfig, SchedulerConfig, SimConfig, SystemConfig

    sections = {None: SimConfig, "scheduler": SchedulerConfig, "memory": MemoryConfig,
                "system": SystemConfig}
    by_section = {key: {f.name: f for f in dataclasses.fields(cls)}
                  for key, cls in sections.items()}
    return {flag: by_section[section][name] for flag, (section, name) in FLAG_FIELDS.items()}


def _show(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def flag_ranges() -> dict[str, str]:
    """``flag -> "range LO .. HI UNITS"`` from the config fields' metadata (the
    ranges ``SimConfig`` checks), for the help text."""
    from ..config.fields import range_text  # the wording the config's own errors use

    out = {}
    for flag, f in _config_fields().items():
        if f.metadata.get("range"):
            text = range_text({k: v for k, v in f.metadata.items() if k != "range_note"})
            out[flag] = "range " + text.removeprefix("allowed ")
    return out


def flag_defaults() -> dict[str, str]:
    """``flag -> "default VALUE"`` from the config dataclasses' field defaults, for the
    help text. Defaults of None (worked out at run time, as the flag's help says)
    and switches that are off are left out; True shows as ``on``."""
    import dataclasses

    out = {}
    for flag, f in _config_fields().items():
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if value is None or value is False:
            continue
        out[flag] = "default on" if value is True else \
            f"default {value if isinstance(value, str) else _show(value)}"
    return out


def add_run_parser(sub) -> None:
    """Add the ``run`` subcommand to ``llmsim``'s subparsers."""
    run = sub.add_parser("run", help="simulate a trace and print a summary")
    ranges, defaults = flag_ranges(), flag_defaults()
    for name, kind, text in RUN_FLAGS:
        notes = [note[name] for note in (defaults, ranges) if name in note]
        if notes:
            text = f"{text} ({'; '.join(notes)})"
        if kind is None:
            run.add_argument(f"--{name}", action="store_true", default=None, help=text)
        else:
            run.add_argument(f"--{name}", type=kind, default=None, help=text)
    run.add_argument("--quiet", action="store_true", help="print nothing but errors")
    run.add_argument("--trace_events", metavar="PATH", default=None,
                     help="write the run's timeline as Chrome / Perfetto trace-event JSON "
                          "(open in ui.perfetto.dev; .gz compresses)")
    group = run.add_argument_group(
        "workload", "generate the trace (drawn from --seed) instead of reading --dataset, "
                    "and cut or fix the trace before it is simulated")
    metavars = {"num_requests": "N", "arrival": "PROCESS", "rate": "R", "cv": "C",
                "lengths": "SPEC", "limit": "N", "shared_prefix": "G,P,S,Q,O",
                "multi_turn": "N,T,U,O,THINK", "slo_ttft": "S", "slo_tpot": "S"}
    for name, kind, text in WORKLOAD_FLAGS:
        if kind is None:
            group.add_argument(f"--{name}", action="store_true", help=text)
        else:
            group.add_argument(f"--{name}", type=kind, default=None, metavar=metavars[name],
                               help=text)


def _with_flag_hint(exc: ValueError) -> str:
    """The library's advice for a trace it refuses, plus the flag that follows it."""
    from ..instance.checks import RequestsTooLongError
    from ..workload.loaders import UnsortedTraceError

    if isinstance(exc, RequestsTooLongError):
        return f"{exc} (llmsim run: --drop_too_long drops them, or --max_model_len N)"
    if isinstance(exc, UnsortedTraceError):
        return f"{exc} (llmsim run: --sort)"
    return str(exc)


def _workload(args: argparse.Namespace, config: SimConfig):
    """The trace the workload flags ask for, or None for the Simulator's own
    (``--dataset`` or the packaged trace) when none is given.

    Order: read or generate, ``--sort``, ``--limit``, then ``--drop_too_long``
    (whose count goes to stderr). Conflicting flags raise a one-line
    ``ValueError`` naming them.
    """
    generate = {name: getattr(args, name) for name in GENERATE_FLAGS}
    given = [f"--{name}" for name, value in generate.items() if value is not None]
    if not given and args.limit is None and not args.drop_too_long and not args.sort:
        return None
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: must be a whole number >= 1 (the most "
                         f"requests simulated)")
    from ..workload import default_trace, load_trace
    from ..workload.recipe import WorkloadRecipe

    if given:
        if config.dataset is not None:
            raise ValueError(f"--dataset {config.dataset!r} and {given[0]} are alternatives: "
                             f"read a trace file, or generate one with "
                             f"{', '.join('--' + f for f in GENERATE_FLAGS)}, not both")
        if args.limit is not None:
            raise ValueError(f"--limit {args.limit} cuts a trace that is read; a generated "
                             f"trace has --num_requests requests: ask for that many instead")
        if args.sort:
            raise ValueError("--sort sorts a --dataset file whose arrivals go backwards; a "
                             "generated trace (" + given[0] + ") is always in arrival order")
        trace = WorkloadRecipe.from_flags(**generate).build(config.seed)
    elif config.dataset is not None:
        limit = None if args.sort else args.limit  # sort first, then cut
        trace = load_trace(config.dataset, sort=args.sort, limit=limit)
        if args.sort:
            trace = trace.sort()
        elif limit is not None and len(trace) == limit:
            trace = trace.head(limit)  # says "(first N)" in the source
    elif args.sort:
        raise ValueError("--sort sorts a --dataset file whose arrivals go backwards; without "
                         "--dataset the packaged trace is already in arrival order")
    else:
        trace = default_trace()
    if args.limit is not None and len(trace) > args.limit:
        trace = trace.head(args.limit)
    if args.drop_too_long:
        trace = _drop_too_long(trace, config, quiet=args.quiet)
    return trace


def _drop_too_long(trace, config: SimConfig, *, quiet: bool):
    """``trace`` without the requests longer than ``max_model_len`` (the limit
    ``Instance.check_lengths`` enforces); says how many were dropped on stderr."""
    from ..models.catalog import get_model

    given = config.scheduler.max_model_len
    model = get_model(config.model)
    limit = given or model.max_seq_len
    why = "as given" if given else f"{model.name}'s context"
    fits = trace.num_prompt_tokens + trace.num_output_tokens <= limit
    n, dropped = len(trace), len(trace) - int(fits.sum())
    if dropped == n:
        raise ValueError(f"--drop_too_long would drop all {n} requests: each is longer than "
                         f"max_model_len={limit} tokens ({why}); pass --max_model_len N to "
                         f"serve them beyond the model's context")
    if dropped:
        trace = trace.filter(fits, label=f"prompt + output <= max_model_len={limit}")
    if not quiet:
        print(f"llmsim: --drop_too_long dropped {dropped} of {n} requests longer than "
              f"max_model_len={limit} tokens ({why})", file=sys.stderr)
    return trace


def _simulate(args: argparse.Namespace):
    """Build the config, the trace and the simulator, run; (results, wall seconds).

    The results are the run's Dataset when files are to be written, else its
    ``ArrayResults`` (all the summary reads)."""
    from tqdm import tqdm

    from ..instance.simulator import Simulator
    from ..workload.sessions import SessionWorkload
    from ..results.files import check_output_paths, check_output_prefix, check_throughput_buckets

    flags = {name: getattr(args, name) for name, _, _ in RUN_FLAGS}
    start = time.perf_counter()
    config = SimConfig.from_flags(**flags)
    try:
        check_slos(args)
        workload = prefix_workload(args, config.seed, config.dataset)
        trace = _workload(args, config) if workload is None else workload
        if args.output is not None:  # before anything is simulated (or created)
            check_output_prefix(args.output)
        if args.trace_events is not None:
            check_output_paths([Path(args.trace_events)])
        if isinstance(trace, SessionWorkload):
            return _serve_sessions(args, config, trace, start)
        sim = Simulator(config, trace)
    except ValueError as exc:
        raise ValueError(_with_flag_hint(exc)) from None
    if args.output is not None:
        # The run lasts at least until the last arrival becomes schedulable, so
        # the throughput table has at least that many buckets: refuse it now,
        # not after the simulation, if it would be too big to allocate.
        check_throughput_buckets(float(sim.trace.arrival_at.max()) + config.scheduler.batch_delay)
    with tqdm(total=len(sim.trace), unit="req", delay=2.0,
              disable=True if args.quiet else None, desc="simulating", file=sys.stderr) as bar:
        def progress(done: int) -> None:
            bar.update(done - bar.n)

        # With --fast_run either reads and writes the cache. Without files to
        # write, the summary needs only the arrays: no Dataset (nor xarray) is made.
        if args.output is not None or args.trace_events is not None:
            ds = sim.run(progress=progress)
        else:
            sim.advance(progress=progress)
            ds = sim.result_arrays()
    return ds, time.perf_counter() - start


def _serve_sessions(args: argparse.Namespace, config: SimConfig, workload, start: float):
    """``--multi_turn``: a closed loop of sessions on one instance (no progress bar:
    the number of requests is known, their arrival times are not)."""
    from ..instance import Instance
    from ..instance.session_run import SessionRun
    from ..system import build_instance

    instance = Instance(build_instance(config, longest_request=workload.max_prompt_tokens()
                                       + max(t.num_output_tokens for s in workload.sessions
                                             for t in s.turns)))
    check_session_lengths(instance, workload)
    ds = SessionRun(instance, workload).run()
    return ds, time.perf_counter() - start


def run_run_command(args: argparse.Namespace) -> int:
    """Run ``llmsim run``; return the exit status."""
    from ..results.dataset import summarize
    from ..results.files import write_outputs

    # Every warning of the command (configuration, building, the run) is
    # printed as one line, not in Python's two-line format.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds, wall = _simulate(args)
        finally:
            for warning in caught:
                print(f"llmsim: warning: {warning.message}", file=sys.stderr)
    if args.output is not None:
        paths = write_outputs(ds, args.output)
        if not args.quiet:
            print("wrote " + ", ".join(str(p) for p in paths))
    if args.trace_events is not None:
        from ..results.timeline import write_trace_events

        path = write_trace_events(ds, args.trace_events)
        if not args.quiet:
            print(f"wrote {path} (trace events: open in ui.perfetto.dev)")
    if not args.quiet:
        print(format_summary(summarize(ds, slo_ttft=args.slo_ttft, slo_tpot=args.slo_tpot),
                              wall, ds))
    return 0


__all__ = ["GENERATE_FLAGS", "RUN_FLAGS", "WORKLOAD_FLAGS", "add_run_parser", "flag_defaults",
           "flag_ranges", "run_run_command"]
