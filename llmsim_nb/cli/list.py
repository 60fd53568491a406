"""``llmsim list models|hardware|networks|serving-stacks``: what the registries hold, one line each.

::

    $ llmsim list models
    gpt2           124M parameters, 12 layers, hidden 768, context 1024
    ...
    $ llmsim list hardware
    a100-40gb             gpu engine, 40 GiB, 312 TFLOP/s fp16 peak
    npu-128x128           npu engine, 24 GiB, 32.77 TFLOP/s 16-bit peak
    ...
    $ llmsim list networks
    gpu_n4                             4 devices: FullyConnected 4
    neupims_(4,2)                      64 devices: FullyConnected 32 x FullyConnected 2
    ...

The peak is the matmul peak (``spec.peak_matmul_flops``) in the preset's data
type. Each name is one that a ``llmsim run`` flag takes (``--model_name``,
``--hardware``, ``--network``). The registries are imported only when the command
runs, so ``llmsim --help`` stays fast.
"""

from __future__ import annotations

import argparse

#: What ``llmsim list`` lists.
KINDS = ("models", "hardware", "networks", "serving-stacks")


def add_list_parser(sub) -> None:
    """Add the ``list`` subcommand to ``llmsim``'s subparsers."""
    parser = sub.add_parser("list", help="list the models, hardware presets or networks")
    parser.add_argument("kind", choices=KINDS,
                        help="models (--model_name), hardware (--hardware), networks "
                             "(--network) or serving-stacks (--serving_stack)")


def _count(n: float) -> str:
    """``6_658_000_000`` -> ``6.7B``, ``124_439_808`` -> ``124M``."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return f"{n:.0f}"


def _table(rows: list[tuple[str, str]]) -> list[str]:
    """``name  description`` lines, the names padded to one width."""
    width = max(len(name) for name, _ in rows)
    return [f"{name:{width}s}  {text}" for name, text in rows]


def model_lines() -> list[str]:
    """One line per catalog model: parameters, layers, hidden size, context."""
    from ..models.catalog import get_model, list_models

    rows = []
    for name in list_models():
        m = get_model(name)
        rows.append((name, f"{_count(m.num_parameters())} parameters, {m.num_layers} layers, "
                           f"hidden {m.hidden_size}, context {m.max_seq_len}"))
    return _table(rows)


def hardware_lines() -> list[str]:
    """One line per hardware preset: engine, device memory, peak matmul FLOP/s."""
    from ..engines.hardware import get_hardware, list_hardware

    rows = []
    for name in list_hardware():
        preset = get_hardware(name)
        spec = preset.spec
        memory = getattr(spec, "memory_bytes", None)
        memory_text = f"{memory / 2**30:.4g} GiB" if memory else "memory n/a"
        peak = getattr(spec, "peak_matmul_flops", None)
        dtype = getattr(spec, "dtype", None)
        if dtype is None:
            dtype = {1: "8-bit", 2: "16-bit", 4: "32-bit"}.get(getattr(spec, "dtype_bytes", 0),
                                                               "matmul")
        peak_text = f", {peak / 1e12:.4g} TFLOP/s {dtype} peak" if peak else ""
        rows.append((name, f"{preset.engine} engine, {memory_text}{peak_text}"))
    return _table(rows)


def network_lines() -> list[str]:
    """One line per network preset: devices and dimensions (kind and size)."""
    from ..network import list_network_presets, load_topology

    rows = []
    for name in list_network_presets():
        topo = load_topology(name)
        dims = " x ".join(f"{d.kind} {d.size}" for d in topo.dimensions)
        devices = f"{topo.num_devices} device" + ("s" if topo.num_devices != 1 else "")
        rows.append((name, f"{devices}: {dims}"))
    return _table(rows)


def serving_stack_lines() -> list[str]:
    """One line per serving stack: its host figures (``ServingStack.summary``)."""
    from ..engines.serving_stack import get_serving_stack, list_serving_stacks

    rows = [(name, get_serving_stack(name).summary().split(": ", 1)[1])
            for name in list_serving_stacks()]
    return _table(rows)


def run_list_command(args: argparse.Namespace) -> int:
    """Print ``llmsim list KIND``; return the exit status."""
    lines = {"models": model_lines, "hardware": hardware_lines,
             "networks": network_lines, "serving-stacks": serving_stack_lines}[args.kind]()
    print("\n".join(lines))
    return 0


__all__ = ["KINDS", "add_list_parser", "hardware_lines", "model_lines", "network_lines",
           "run_list_command", "serving_stack_lines"]
