"""Bad input, however bad, ends in a clear error before anything is simulated.

Every case names the input and a pattern the message must match: the field,
the value and what is allowed. The Python API raises ValueError (TraceError is
one); the CLI exits non-zero with one line on stderr and no traceback.
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator, sweep
from llmsim_nb.cli.main import main
from llmsim_nb.config import MemoryConfig, SchedulerConfig, SystemConfig
from llmsim_nb.engines.hardware import get_hardware
from llmsim_nb.models.catalog import get_model
from llmsim_nb.network import load_topology
from llmsim_nb.workload import Trace, load_trace

F = SimConfig.from_flags
HEADER = "input_toks\toutput_toks\tarrival_time_ns\n"
NET_OK = {"topologies-per-dim": ["FullyConnected", "FullyConnected"], "dimensions-count": 2,
          "units-count": [2, 2], "links-count": [1, 1], "link-latency": [0, 0],
          "link-bandwidth": [64, 64]}


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def net(tmp: Path, name: str, **changes) -> str:
    """A seed-format network file: NET_OK with keys changed (None removes one)."""
    data = dict(NET_OK)
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return write(tmp, name, json.dumps(data))


def gpt2_sim(**flags):
    return Simulator(F(model_name="gpt2", **flags), Trace([0.0], [8], [4]))


def tiny():
    return Trace([0.0, 0.01], [8, 16], [4, 2], source="tiny")


def onnx_with(tmp: Path, op: str) -> str:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 64])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], name="odd")], "g", [x], [y])
    path = tmp / f"{op}.onnx"
    onnx.save(helper.make_model(graph), path)
    return str(path)


def run_sweep(**kwargs):
    kwargs.setdefault("client", "serial")
    kwargs.setdefault("progress", False)
    return sweep(F(model_name="gpt2"), kwargs.pop("trace", tiny()), **kwargs)


# (id, callable taking a tmp folder, regex the message must match)
API_CASES = [
    # ------------------------------------------------------------ counts
    ("npu_num zero", lambda t: F(npu_num=0),
     r"^npu_num=0 is out of range \(must be >= 1\); allowed 1 \.\. 65536"),
    ("npu_num negative", lambda t: F(npu_num=-4), r"npu_num=-4 is out of range \(must be >= 1\)"),
    ("npu_num fraction", lambda t: F(npu_num=2.5),
     r"npu_num=2\.5 must be an integer; allowed 1 \.\. "),
    ("npu_num bool", lambda t: F(npu_num=True),
     r"npu_num=True must be an integer; allowed 1 \.\. "),
    ("npu_group zero", lambda t: F(npu_group=0), r"npu_group=0 is out of range \(must be >= 1\)"),
    ("npu_group not dividing", lambda t: F(npu_num=4, npu_group=3),
     r"npu_group=3 must divide npu_num=4"),
    ("max_batch negative", lambda t: F(max_batch=-1),
     r"max_batch=-1 is out of range \(must be >= 0\)"),
    ("micro_batches negative", lambda t: F(micro_batches=-2),
     r"micro_batches=-2 is out of range \(must be >= 0\)"),
    ("block_size zero", lambda t: F(block_size=0),
     r"block_size=0 is out of range \(must be >= 1\)"),
    ("block_size negative", lambda t: F(block_size=-16),
     r"block_size=-16 is out of range \(must be >= 1\)"),
    ("block_size fraction", lambda t: F(block_size=1.5),
     r"block_size=1\.5 must be an integer; allowed 1 \.\. "),
    ("token budget zero", lambda t: F(max_num_batched_tokens=0),
     r"max_num_batched_tokens=0 is out of range \(must be >= 1\)"),
    ("seed negative", lambda t: F(seed=-1), r"^seed=-1 is out of range \(must be >= 0\)"),
    ("reuse cache zero", lambda t: F(reuse_cache_size=0),
     r"reuse_cache_size=0 is out of range \(must be >= 1\)"),
    # ------------------------------------------------------------ reals
    ("npu_mem zero", lambda t: F(npu_mem=0), r"npu_mem=0\.0 is out of range \(must be > 0\.0\)"),
    ("npu_mem negative", lambda t: F(npu_mem=-1),
     r"npu_mem=-1\.0 is out of range \(must be > 0\.0\)"),
    ("npu_mem infinite", lambda t: F(npu_mem=float("inf")), r"npu_mem=inf must be a finite number"),
    ("npu_mem with units", lambda t: F(npu_mem="24GB"),
     r"npu_mem='24GB' must be a finite number"),
    ("batch_delay negative", lambda t: F(batch_delay=-0.5),
     r"batch_delay=-0\.5 is out of range \(must be >= 0\)"),
    ("batch_delay nan", lambda t: F(batch_delay=float("nan")),
     r"batch_delay=nan must be a finite number"),
    ("host bandwidth zero", lambda t: MemoryConfig(host_bandwidth=0),
     r"^host_bandwidth=0 is out of range \(must be > 0\.0\)"),
    ("host latency negative", lambda t: MemoryConfig(host_latency=-1e-6),
     r"^host_latency=-1e-06 is out of range \(must be >= 0"),
    ("activation reserve too big", lambda t: MemoryConfig(activation_reserve=0.95),
     r"^activation_reserve=0\.95 is out of range \(must be <= 0\.9\)"),
    # ------------------------------------------------------------ choices and types
    ("scheduling unknown", lambda t: F(scheduling="fifo"),
     r"^scheduling='fifo' is not one of \['auto', 'orca', 'vllm', 'chunked', 'vllm-v1'\]$"),
    ("kv_manage unknown", lambda t: F(kv_manage="lru"),
     r"kv_manage='lru' is not one of \['vllm', 'max'\]"),
    ("parallel unknown", lambda t: F(parallel="data"),
     r"parallel='data' is not one of \['tensor', 'pipeline', 'hybrid'\]"),
    ("pim_type unknown", lambda t: F(pim_type="remote"),
     r"pim_type='remote' is not one of \['none', 'local', 'pool'\]"),
    ("attention placement unknown", lambda t: F(attention_placement="tokens"),
     r"attention_placement='tokens' is not one of \['auto', 'heads', 'requests', 'data'\]"),
    ("collective unknown", lambda t: F(collective="tree"),
     r"collective='tree' is not one of \['auto', 'ring', 'direct', 'halving_doubling'\]"),
    ("npu_mode unknown", lambda t: F(npu_mode="fast"),
     r"npu_mode='fast' is not one of \['analytical', 'detailed'\]"),
    ("reuse not on/off", lambda t: F(reuse="maybe"), r"reuse='maybe' is not one of \['on', 'off'\]"),
    ("congestion not bool", lambda t: F(congestion="yes"), r"^congestion='yes' must be a bool"),
    ("gen not bool", lambda t: F(gen=1), r"^gen=1 must be a bool"),
    ("fast_run not bool", lambda t: F(fast_run="yes"), r"^fast_run='yes' must be a bool"),
    ("fast_run without reuse", lambda t: F(fast_run=True, reuse="off"),
     r"fast_run=True keeps the reuse cache on disk, but reuse=False"),
    ("dataset empty", lambda t: F(dataset=""), r"^dataset='' must be a trace file path or None"),
    ("dataset not a path", lambda t: F(dataset=3), r"^dataset=3 must be a trace file path"),
    ("network empty", lambda t: F(network=""), r"^network='' must be a file path or preset name"),
    ("model not a name", lambda t: F(model_name=3), r"^model_name=3 must be a model name"),
    ("unknown flag", lambda t: F(npus=4), r"unknown flag\(s\) \['npus'\]; known flags: .*'npu_num'"),
    ("section of wrong type", lambda t: SimConfig(scheduler=SystemConfig()),
     r"^scheduler must be a SchedulerConfig, got SystemConfig"),
    ("replace with bad value", lambda t: dataclasses.replace(SchedulerConfig(), max_batch=-3),
     r"^max_batch=-3 is out of range \(must be >= 0\)"),
    # ------------------------------------------------------------ contradictions
    ("sub-batch without PIM", lambda t: F(sub_batch=True),
     r"sub_batch=True needs pim_type 'local' or 'pool'"),
    ("tensor with groups", lambda t: gpt2_sim(npu_num=4, npu_group=2, parallel="tensor"),
     r"parallel='tensor' uses one group of all 4 NPUs; npu_group=2 needs"),
    ("pipeline with groups", lambda t: gpt2_sim(npu_num=4, npu_group=2, parallel="pipeline"),
     r"parallel='pipeline' makes each of the 4 NPUs a stage; npu_group=2 needs"),
    ("TP not dividing heads", lambda t: gpt2_sim(npu_num=5, attention_placement="heads"),
     r"tensor parallelism 5 must divide the 12 attention heads of 'gpt2'"),
    ("pipeline stages above layers", lambda t: gpt2_sim(npu_num=16, parallel="pipeline"),
     r"16 pipeline stages exceed the model's 12 layers"),
    ("hybrid stages above layers", lambda t: gpt2_sim(npu_num=32, npu_group=16),
     r"16 pipeline stages exceed the model's 12 layers"),
    # ------------------------------------------------------------ memory
    ("weights above memory", lambda t: Simulator(F(model_name="gpt3-30b"), tiny()),
     r"holds 55\.83 GiB of weights .* it needs npu_mem >= 58\.80 GiB per device"),
    ("gpt2 on 0.1 GiB", lambda t: gpt2_sim(npu_mem=0.1),
     r"'gpt2' does not fit: .* of its 0\.10 GiB .* needs npu_mem >= 0\.25 GiB"),
    ("request longer than cache", lambda t: Simulator(
        F(model_name="gpt2", npu_mem=0.3, max_model_len=200_000), Trace([0.0], [100_000], [1])),
     r"request 0 needs \d+ KV blocks \(100000 tokens\) .* could never run"),
    ("request longer than the model's context", lambda t: Simulator(
        F(model_name="gpt2"), Trace([0.0, 1.0, 2.0], [10, 1000, 3000], [5, 30, 1])),
     r"2 of 3 requests are longer than max_model_len=1024 tokens \(gpt2's context\); .*"
     r"request 1 with 1000 prompt \+ 30 output tokens.* max_model_len >= 3001"),
    ("max_model_len zero", lambda t: F(max_model_len=0),
     r"^max_model_len=0 is out of range \(must be >= 1\)"),
    # ------------------------------------------------------------ names
    ("unknown model", lambda t: get_model("gpt5"),
     r"model name 'gpt5' is not in the catalog .*known models: gpt2, "),
    ("unknown model in a simulator", lambda t: Simulator(F(model_name="llama-9b")),
     r"'llama-9b' is not in the catalog.*known models: .*llama-7b"),
    ("unknown hardware", lambda t: get_hardware("tpu-v9"),
     r"hardware='tpu-v9' is not a known preset; known presets: \[.*'npu-128x128'"),
    ("unknown network preset", lambda t: load_topology("torus_9d"),
     r"network='torus_9d' is neither a known preset nor a file; known presets: \["),
    # ------------------------------------------------------------ network files
    ("network file missing", lambda t: load_topology(str(t / "nope.json")),
     r"network file '.*nope\.json' does not exist"),
    ("network missing key", lambda t: load_topology(net(t, "a.json", units_count=None)),
     r"missing key 'units-count' \(required: \["),
    ("network dimension count", lambda t: load_topology(net(t, "b.json", dimensions_count=3)),
     r"must list exactly dimensions-count=3 topologies"),
    ("network short list", lambda t: load_topology(net(t, "c.json", link_latency=[0])),
     r"link-latency has 1 entries, fewer than dimensions-count=2"),
    ("network negative bandwidth", lambda t: load_topology(net(t, "d.json",
                                                               link_bandwidth=[-1, 64])),
     r"dimension 0: Dimension\.bandwidth must be > 0"),
    ("network zero units", lambda t: load_topology(net(t, "e.json", units_count=[0, 2])),
     r"dimension 0: Dimension\.size must be an integer >= 1, got 0"),
    ("network unknown kind", lambda t: load_topology(net(t, "f.json",
                                                         topologies_per_dim=["Mesh", "Ring"])),
     r"Dimension\.kind='Mesh' is not one of \['Ring', 'FullyConnected', 'Switch'\]"),
    ("network not an object", lambda t: load_topology(write(t, "g.json", "[1, 2]")),
     r"expected a JSON object, got list"),
    ("network invalid JSON", lambda t: load_topology(write(t, "h.json", "{")),
     r"not valid JSON"),
    ("network text number", lambda t: load_topology(net(t, "i.json",
                                                        link_bandwidth=["fast", 64])),
     r"link-bandwidth\[0\]='fast' must be a number"),
    ("network topology name", lambda t: load_topology(net(t, "j.json", topology_name="Torus")),
     r"topology-name='Torus'; only 'Hierarchical' is supported"),
    # npu_num=6: a TP degree that divides gpt2's 12 heads (8 would also warn, ConfigWarning)
    ("network devices differ", lambda t: gpt2_sim(npu_num=6, network=net(t, "k.json")),
     r"has 4 devices but npu_num=6 \(its dimension sizes \[2, 2\] multiply to 4\)"),
    ("yaml network unknown key", lambda t: load_topology(write(
        t, "l.yaml", "dimensions:\n  - {kind: Ring, size: 4, bandwidth: 64 GB/s, latency: 0 ns, "
        "links: 2, color: red}\n")), r"dimensions\[0\]: unknown keys \['color'\] \(allowed: "),
    ("yaml network no dimensions", lambda t: load_topology(write(t, "m.yaml", "foo: 1\n")),
     r"unknown keys \['foo'\] \(allowed: dimensions"),
    # ------------------------------------------------------------ traces
    ("trace file missing", lambda t: load_trace(t / "nope.tsv"), r"nope\.tsv: trace file not found"),
    ("trace empty file", lambda t: load_trace(write(t, "a.tsv", "")), r"file is empty"),
    ("trace header only", lambda t: load_trace(write(t, "b.tsv", HEADER)),
     r"has a header but no request rows"),
    ("trace missing column", lambda t: load_trace(write(t, "c.tsv", "input_toks\toutput_toks\n1\t2\n")),
     r"missing column\(s\) \['arrival_time_ns'\]"),
    ("trace non-integer tokens", lambda t: load_trace(write(t, "d.tsv", HEADER + "1.5\t2\t0\n")),
     r"row 1 \(line 2\): column 'input_toks' = '1\.5' is not an integer"),
    ("trace negative output", lambda t: load_trace(write(t, "e.tsv", HEADER + "1\t-2\t0\n")),
     r"output_toks = -2; output token counts must be integers >= 0"),
    ("trace zero prompt", lambda t: load_trace(write(t, "f.tsv", HEADER + "0\t2\t0\n")),
     r"input_toks = 0; a request needs at least 1 prompt token"),
    ("trace arrivals backwards", lambda t: load_trace(write(
        t, "g.tsv", HEADER + "1\t2\t100\n1\t2\t50\n")), r"row 2 \(line 3\): arrival_time_ns goes backwards"),
    ("trace short row", lambda t: load_trace(write(t, "h.tsv", HEADER + "1\t2\n")),
     r"has 2 fields, the header has 3"),
    ("trace nan arrival", lambda t: load_trace(write(
        t, "i.csv", "input_toks,output_toks,arrival_time_ns\n1,2,nan\n")),
     r"arrival_time_ns = nan; arrival times must be finite"),
    ("trace invalid JSONL", lambda t: load_trace(write(
        t, "j.jsonl", '{"input_toks": 1, "output_toks": 2, "arrival_time_ns": 0}\n{oops\n')),
     r"row 2 \(line 2\): invalid JSON"),
    ("trace JSONL missing key", lambda t: load_trace(write(
        t, "k.jsonl", '{"input_toks": 1, "arrival_time_ns": 0}\n')),
     r"missing key\(s\) \['output_toks'\]"),
    ("azure bad timestamp", lambda t: load_trace(write(
        t, "l.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,10,5\n")),
     r"'TIMESTAMP' = 'yesterday' is not a timestamp; expected 'YYYY-MM-DD HH:MM:SS"),
    ("in-memory unequal columns", lambda t: Trace([0.0, 1.0], [1], [1, 2]),
     r"Trace columns must have equal lengths"),
    ("in-memory empty", lambda t: Trace([], [], []), r"Trace must hold at least one request"),
    ("in-memory zero prompt", lambda t: Trace([0.0], [0], [1]),
     r"Trace\.num_prompt_tokens\[0\] = 0; must be >= 1"),
    ("in-memory float tokens", lambda t: Trace([0.0], [1.5], [1]),
     r"num_prompt_tokens must have an integer dtype"),
    ("in-memory nan arrival", lambda t: Trace([np.nan], [1], [1]),
     r"arrival_at\[0\] = nan; must be finite seconds"),
    ("in-memory negative arrival", lambda t: Trace([-1.0], [1], [1]),
     r"arrival_at\[0\] = -1\.0; must be >= 0 seconds"),
    ("in-memory arrivals backwards", lambda t: Trace([1.0, 0.5], [1, 1], [1, 1]),
     r"arrival_at\[1\] = 0\.5 is earlier than arrival_at\[0\]"),
    # ------------------------------------------------------------ ONNX
    ("ONNX unsupported op", lambda t: __import__(
        "llmsim_nb.models.onnx", fromlist=["x"]).import_block_onnx(onnx_with(t, "Conv")),
     r"ONNX op type 'Conv' \(node 'odd', domain 'ai\.onnx'\) is not supported .*supported op "
     r"types are \["),
    # ------------------------------------------------------------ sweeps
    ("sweep unknown axis", lambda t: run_sweep(out_dir=t, npus=[1]),
     r"sweep axis 'npus' is not a flag; known flags: "),
    ("sweep scalar axis", lambda t: run_sweep(out_dir=t, npu_num=4),
     r"sweep axis 'npu_num' must be a list of values, got 4"),
    ("sweep string axis", lambda t: run_sweep(out_dir=t, scheduling="orca"),
     r"sweep axis 'scheduling' must be a list of values, got 'orca'"),
    ("sweep empty axis", lambda t: run_sweep(out_dir=t, npu_num=[]),
     r"sweep axis 'npu_num' has no values"),
    ("sweep repeated value", lambda t: run_sweep(out_dir=t, npu_num=[1, 2, 1]),
     r"sweep axis 'npu_num' repeats the value 1"),
    ("sweep None value", lambda t: run_sweep(out_dir=t, npu_mem=[None, 2]),
     r"sweep axis 'npu_mem': None is not an axis value"),
    ("sweep no axes", lambda t: run_sweep(out_dir=t), r"a sweep needs at least one axis"),
    ("sweep axes and points", lambda t: run_sweep(out_dir=t, points=[{"npu_num": 1}],
                                                  npu_num=[1]),
     r"give either axes \(a cartesian product\) or points, not both"),
    ("sweep point unknown flag", lambda t: run_sweep(out_dir=t, points=[{"npus": 2}]),
     r"points\[0\] has unknown flag\(s\) \['npus'\]"),
    ("sweep point repeated", lambda t: run_sweep(out_dir=t, points=[{"npu_num": 2},
                                                                    {"npu_num": 2}]),
     r"points\[1\] repeats an earlier point"),
    ("sweep invalid value", lambda t: run_sweep(out_dir=t, block_size=[16, 0]),
     r"1 of 2 sweep points are invalid, nothing was run: \[block_size=0\] "
     r"block_size=0 is out of range \(must be >= 1\)"),
    ("sweep n_workers zero", lambda t: run_sweep(out_dir=t, client=None, n_workers=0,
                                                 npu_num=[1]),
     r"n_workers must be an integer >= 1, got 0"),
    ("sweep client and n_workers", lambda t: run_sweep(out_dir=t, client=object(), n_workers=2,
                                                       npu_num=[1]),
     r"n_workers sizes the LocalCluster .* give one or the other"),
    ("sweep unknown client", lambda t: run_sweep(out_dir=t, client="threads", npu_num=[1]),
     r"client='threads': give a distributed\.Client, 'serial' or None"),
    ("sweep base of wrong type", lambda t: sweep(42, tiny(), npu_num=[1], client="serial"),
     r"base_config must be a SimConfig or a mapping of flags, got int"),
    ("sweep trace of wrong type", lambda t: run_sweep(out_dir=t, trace=[1, 2], npu_num=[1]),
     r"trace must be a Trace, a mapping of labels to Trace or None, got list"),
    ("sweep dataset and trace", lambda t: run_sweep(out_dir=t, dataset=["a.tsv"]),
     r"'dataset' is swept but a trace was given"),
    ("sweep empty trace mapping", lambda t: run_sweep(out_dir=t, trace={}, npu_num=[1]),
     r"trace mapping is empty"),
    ("sweep trace mapping of arrays", lambda t: run_sweep(out_dir=t, trace={"a": [1]},
                                                          npu_num=[1]),
     r"trace mapping must map str labels to Trace, got 'a': list"),
]


@pytest.mark.parametrize("case,make,pattern", API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_refuses(case, make, pattern, tmp_path):
    with pytest.raises(ValueError, match=pattern):
        make(tmp_path)


def test_there_are_at_least_60_distinct_bad_inputs():
    ids = [c[0] for c in API_CASES] + [c[0] for c in CLI_CASES]
    assert len(set(ids)) == len(ids) and len(ids) >= 60


# ---------------------------------------------------------------------- CLI
def sweep_file(tmp: Path, text: str) -> str:
    return write(tmp, "sweep.yaml", text)


# (id, argv built from a tmp folder, substring of the one stderr line)
CLI_CASES = [
    ("cli npu_num zero", lambda t: ["run",
     "--npu_num", "0"], "npu_num=0 is out of range (must be >= 1)"),
    ("cli npu_num text", lambda t: ["run", "--npu_num", "two"], "invalid int value: 'two'"),
    ("cli block_size negative", lambda t: ["run", "--block_size", "-16"],
     "block_size=-16 is out of range (must be >= 1)"),
    ("cli scheduling", lambda t: ["run", "--scheduling", "fifo"],
     "scheduling='fifo' is not one of"),
    ("cli unknown model", lambda t: ["run", "--model_name", "gpt5"], "known models: gpt2"),
    ("cli unknown hardware", lambda t: ["run", "--hardware", "tpu-v9"], "known presets: ["),
    ("cli heads", lambda t: ["run", "--model_name", "gpt2", "--npu_num", "5",
                             "--attention_placement", "heads"],
     "tensor parallelism 5 must divide the 12 attention heads"),
    ("cli stages", lambda t: ["run", "--model_name", "gpt2", "--npu_num", "16",
                              "--parallel", "pipeline"], "16 pipeline stages exceed"),
    ("cli memory", lambda t: ["run", "--model_name", "gpt3-30b"],
     "it needs npu_mem >= 58.80 GiB per device"),
    ("cli sub-batch", lambda t: ["run", "--sub_batch"], "sub_batch=True needs pim_type"),
    ("cli npu_mem zero", lambda t: ["run",
     "--npu_mem", "0"], "npu_mem=0.0 is out of range (must be > 0.0)"),
    ("cli unknown flag", lambda t: ["run", "--npus", "4"], "unrecognized arguments: --npus"),
    ("cli network missing key", lambda t: ["run", "--model_name", "gpt2", "--npu_num", "4",
                                           "--network", net(t, "n.json", links_count=None)],
     "missing key 'links-count'"),
    ("cli network devices", lambda t: ["run", "--model_name", "gpt2", "--npu_num", "2",
                                       "--network", net(t, "n.json")],
     "has 4 devices but npu_num=2"),
    ("cli trace negative", lambda t: ["run", "--dataset", write(t, "a.tsv", HEADER + "1\t-2\t0\n")],
     "output_toks = -2"),
    ("cli trace missing", lambda t: ["run", "--dataset", str(t / "none.tsv")],
     "trace file not found"),
    ("cli config unknown key", lambda t: ["run", "--config", write(t, "c.yaml", "npus: 4\n")],
     "has unknown key(s) ['npus']"),
    ("cli config not mapping", lambda t: ["run", "--config", write(t, "c.yaml", "- 1\n")],
     "must hold a mapping of flag names to values"),
    ("cli config invalid yaml", lambda t: ["run", "--config", write(t, "c.yaml", "a: [1\n")],
     "is not valid YAML"),
    ("cli sweep missing file", lambda t: ["sweep", "--config", str(t / "none.yaml")],
     "does not exist"),
    ("cli sweep unknown key", lambda t: ["sweep", "--config", sweep_file(t, "axis: {}\n")],
     "has unknown key(s) ['axis']; allowed: "),
    ("cli sweep not mapping", lambda t: ["sweep", "--config", sweep_file(t, "[1, 2]\n")],
     "must hold a mapping with keys"),
    ("cli sweep invalid yaml", lambda t: ["sweep", "--config", sweep_file(t, "axes: {a: [\n")],
     "is not valid YAML"),
    ("cli sweep axes not mapping", lambda t: ["sweep", "--config",
                                              sweep_file(t, "axes: [npu_num]\n")],
     "axes must be a mapping of flag -> list of values"),
    ("cli sweep base not mapping", lambda t: ["sweep", "--config",
                                              sweep_file(t, "base: gpt2\naxes: {npu_num: [1]}\n")],
     "base must be a mapping of flags"),
    ("cli sweep bad base flag", lambda t: ["sweep", "--config", sweep_file(
        t, "base: {model: gpt2}\naxes: {npu_num: [1]}\n")], "unknown flag(s) ['model']"),
    ("cli sweep invalid points", lambda t: ["sweep", "--config", sweep_file(
        t, f"base: {{model_name: gpt2}}\naxes: {{npu_num: [2, 5], attention_placement: [heads]}}"
           f"\nout_dir: {t}\n"), "--serial"],
     "1 of 2 sweep points are invalid, nothing was run: [npu_num=5"),
    ("cli sweep axis not a flag", lambda t: ["sweep", "--config", sweep_file(
        t, "axes: {out_dir: [a, b]}\n")], "axes: 'out_dir' is not a flag; known flags: "),
    ("cli sweep trace axis", lambda t: ["sweep", "--config", sweep_file(
        t, "axes: {trace: [a, b]}\n")], "axes: 'trace' is not a flag"),
    ("cli sweep workers zero", lambda t: ["sweep", "--config", sweep_file(
        t, "axes: {npu_num: [1]}\nworkers: 0\n")], "workers must be an integer >= 1, got 0"),
    ("cli sweep serial with address", lambda t: ["sweep", "--config", sweep_file(
        t, "axes: {npu_num: [1]}\nscheduler_address: tcp://127.0.0.1:1\n"), "--serial"],
     "--serial runs without Dask"),
]


def run_main(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.mark.parametrize("case,make_args,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_with_one_line(case, make_args, message, tmp_path, capsys):
    code = run_main(make_args(tmp_path))
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("llmsim: error: ") and message in lines[0]
    assert "Traceback" not in captured.err
    assert list(tmp_path.glob("points/*.nc")) == []  # nothing ran


@pytest.mark.parametrize("args,message", [
    (["run", "--block_size", "0"], "block_size=0 is out of range (must be >= 1)"),
    (["sweep"], "the following arguments are required: --config"),
])
def test_cli_process_exits_2_without_traceback(args, message):
    result = subprocess.run([sys.executable, "-m", "llmsim_nb.cli", *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
