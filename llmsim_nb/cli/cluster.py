"""``llmsim cluster``: a trace through a cluster described in a YAML file.

    llmsim cluster --config cluster.yaml [--dataset FILE | --num_requests N --rate R ...]

The file is :func:`llmsim_nb.cluster.spec.load_cluster_config`'s (instance
groups with flag overrides, the router, its staleness). The workload is a
trace file, a generated one (the ``llmsim run`` generation flags, seeded by
the first group's ``--seed``), or the packaged trace. Prints the run's
summary and, per instance, the requests routed to it.
"""

from __future__ import annotations

import argparse
import time

from .run import GENERATE_FLAGS, WORKLOAD_FLAGS


def add_cluster_parser(sub) -> None:
    """Add the ``cluster`` subcommand to ``llmsim``'s subparsers."""
    p = sub.add_parser("cluster", help="simulate a cluster of instances behind a router")
    p.add_argument("--config", required=True, help="cluster YAML (base, instances, router, "
                                                   "router_params, router_staleness)")
    p.add_argument("--dataset", default=None, help="trace file (default: the packaged "
                                                   "trace, or a generated one)")
    p.add_argument("--router", default=None, help="overrides the file's router")
    p.add_argument("--decode_router", default=None,
                   help="overrides the file's decode router (prefill/decode pools)")
    p.add_argument("--router_staleness", type=float, default=None,
                   help="overrides the file's: the routers see the instances as they were "
                        "this many seconds ago")
    helps = {name: text for name, _, text in WORKLOAD_FLAGS}
    for name in GENERATE_FLAGS:
        kind = next(k for n, k, _ in WORKLOAD_FLAGS if n == name)
        p.add_argument(f"--{name}", type=kind, default=None, help=helps[name])
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run_cluster_command(args: argparse.Namespace) -> int:
    import dataclasses

    from ..cluster import Cluster, load_cluster_config
    from ..results.dataset import summarize
    from ..workload import default_trace, load_trace
    from ..workload.recipe import WorkloadRecipe
    from .summary import format_summary

    config = load_cluster_config(args.config)
    if args.router is not None:
        config = dataclasses.replace(config, router=args.router, router_params={})
    if args.decode_router is not None:
        config = dataclasses.replace(config, decode_router=args.decode_router,
                                     decode_router_params={})
    if args.router_staleness is not None:
        config = dataclasses.replace(config, router_staleness=args.router_staleness)
    generate = {name: getattr(args, name) for name in GENERATE_FLAGS}
    given = [f"--{name}" for name, value in generate.items() if value is not None]
    if given and args.dataset is not None:
        raise ValueError(f"--dataset {args.dataset!r} and {given[0]} are alternatives: read a "
                         f"trace file, or generate one, not both")
    if given:
        trace = WorkloadRecipe.from_flags(**generate).build(config.groups[0].config.seed)
    elif args.dataset is not None:
        trace = load_trace(args.dataset)
    else:
        trace = default_trace()
    start = time.perf_counter()
    cluster = Cluster(config)
    cluster.submit_trace(trace)
    ds = cluster.run()
    wall = time.perf_counter() - start
    if not args.quiet:
        summary = summarize(ds)
        first = cluster.instances[0].attrs()
        ds.attrs.update({k: first[k] for k in ("model", "hardware", "engine", "scheduling",
                                               "num_kv_blocks", "prefix_caching", "tensor_parallel",
                                               "pipeline_parallel", "attention_placement",
                                               "network")})
        ds.attrs["trace_source"] = trace.source or "generated"
        print(f"cluster: {len(cluster.instances)} instances, router {ds.attrs['router']} "
              f"(staleness {config.router_staleness:g} s); instance 0 below")
        print(format_summary(summary, wall, ds))
        for name, count, iters in zip(ds.instance.values, ds.instance_num_requests.values,
                                      ds.instance_num_iterations.values):
            print(f"  {name:20s} {int(count):7d} requests  {int(iters):8d} iterations")
        if "kv_transfer_bytes" in ds:
            moved = ds.request_decode_instance.values >= 0
            latency = ds.kv_transfer_latency.values[moved]
            print(f"KV transfers        {int(moved.sum())} requests, "
                  f"{float(ds.kv_transfer_bytes.values.sum()) / 1e9:.3f} GB over "
                  f"{config.kv_link}, mean {float(latency.mean()) * 1e3 if len(latency) else 0:.3f} "
                  f"ms each")
    return 0


__all__ = ["add_cluster_parser", "run_cluster_command"]
