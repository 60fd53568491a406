"""Hardened at every door: trace files, measurement files, validation inputs.

Each door has a table of (input file, pattern the one-line ValueError must
match). Every message names the file, the value and, where the file has rows,
the row and line. A hypothesis fuzz test per reader feeds random bytes,
truncations of a valid file and random cell edits: the reader must either
raise a clean one-line ValueError naming the file or return a correct parse,
never anything else (no IndexError, KeyError, TypeError, OverflowError, ...).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsim_nb.cli.main import main
from llmsim_nb.engines.measurements import load_measurements
from llmsim_nb.fidelity.validate import (
    Curve,
    compare_curves,
    compare_requests,
    load_measured_requests,
    load_throughput_curve,
)
from llmsim_nb.workload import Trace, TraceError, load_trace
from llmsim_nb.workload.loaders import MAX_ARRIVAL_S, MAX_TOKENS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DIR = object()  # a case whose "file" is a directory
MISSING = object()  # a case whose file does not exist

SEED = "input_toks\toutput_toks\tarrival_time_ns\n"
SEED_CSV = "input_toks,output_toks,arrival_time_ns\n"
AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
OURS = "model,op,num_tokens,latency_s\n"
VIDUR = ("n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,"
         "num_tensor_parallel_workers,time_stats.mlp_up_proj.median,"
         "time_stats.input_layernorm.median\n")
VIDUR_ROW = "32,32,4096,11008,32000,True,{tokens},1,{up},{norm}\n"
PERF = "hardware,model,layer_name,input,kv_cache,latency(ns)\n"
PERF_ROW = "RTX3090,meta-llama/Llama-3.1-8B-Instruct,{layer},{input},{kv},{ns}\n"
REQ = "arrival,first_token,finish\n"
CURVE = "time duration,prompt throughput,generation throughput\n"
GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00\x86\xa6\x10\x36"


def jsonl(*objects) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


def req(p=1, o=1, a=0, **extra) -> dict:
    return {"input_toks": p, "output_toks": o, "arrival_time_ns": a, **extra}


def bench(**changes) -> str:
    data = {"ttfts": [0.1, 0.2], "itls": [[0.01, 0.02], [0.03]], "input_lens": [5, 6],
            "output_lens": [3, 2]}
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data)


def place(tmp: Path, name: str, content) -> Path:
    """Write ``content`` (str or bytes) at ``tmp/name``; DIR makes a folder, MISSING nothing."""
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is DIR:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not MISSING:
        path.write_text(content, encoding="utf-8")
    return path


def check_message(exc: BaseException, path: Path) -> str:
    """The project standard: a ValueError of one line that names the file."""
    assert isinstance(exc, ValueError), repr(exc)
    message = str(exc)
    assert "\n" not in message and "\r" not in message, message
    assert str(path) in message, message
    return message


# ============================================================ door 1: trace files
# (id, file name, content, pattern)
TRACE_CASES = [
    # fractional token counts are refused, never truncated
    ("fraction prompt", "a.tsv", SEED + "1.5\t2\t0\n",
     r"row 1 \(line 2\): column 'input_toks' = '1\.5' is not an integer"),
    ("whole-valued float output", "a.tsv", SEED + "3\t2.0\t0\n",
     r"row 1 \(line 2\): column 'output_toks' = '2\.0' is not an integer"),
    ("exponent token count", "a.csv", SEED_CSV + "1e3,2,0\n",
     r"column 'input_toks' = '1e3' is not an integer"),
    ("underscore digits", "a.tsv", SEED + "1_000\t2\t0\n",
     r"column 'input_toks' = '1_000' is not an integer"),
    ("non-ASCII digits", "a.tsv", SEED + "\u0661\u0662\t2\t0\n",
     r"column 'input_toks' = '\u0661\u0662' is not an integer"),
    ("JSONL float tokens", "a.jsonl", jsonl(req(o=3.0)),
     r"row 1 \(line 1\): key 'output_toks' = 3\.0 is not an integer"),
    ("Azure fractional tokens", "a.csv", AZURE + "2023-11-16 18:15:46.5,12.5,3\n",
     r"row 1 \(line 2\): column 'ContextTokens' = '12\.5' is not an integer"),
    # empty cells are refused, never read as 0
    ("empty prompt cell", "a.tsv", SEED + "1\t1\t0\n\t2\t5\n",
     r"row 2 \(line 3\): column 'input_toks' = '' is empty.*never read as 0"),
    ("empty output cell CSV", "a.csv", SEED_CSV + "4,,0\n",
     r"row 1 \(line 2\): column 'output_toks' = '' is empty"),
    ("empty arrival cell", "a.tsv", SEED + "4\t1\t\n",
     r"row 1 \(line 2\): column 'arrival_time_ns' = '' is empty"),
    ("Azure empty tokens", "a.csv", AZURE + "2023-11-16 18:15:46.5,,3\n",
     r"row 1 \(line 2\): column 'ContextTokens' = '' is empty"),
    ("Azure empty timestamp", "a.csv", AZURE + ",5,3\n",
     r"row 1 \(line 2\): column 'TIMESTAMP' = '' is empty"),
    # negative, NaN, inf
    ("negative prompt", "a.tsv", SEED + "-3\t1\t0\n",
     r"row 1 \(line 2\): input_toks = -3; a request needs at least 1 prompt token"),
    ("negative output JSONL", "a.jsonl", jsonl(req(), req(o=-1)),
     r"row 2 \(line 2\): output_toks = -1; output token counts must be integers >= 0"),
    ("negative arrival", "a.csv", SEED_CSV + "1,1,-7\n",
     r"row 1 \(line 2\): arrival_time_ns = -7; arrival times must be >= 0 ns"),
    ("NaN arrival", "a.tsv", SEED + "1\t1\t0\n1\t1\tNaN\n",
     r"row 2 \(line 3\): arrival_time_ns = nan; arrival times must be finite"),
    ("inf arrival", "a.tsv", SEED + "1\t1\tinf\n", r"arrival_time_ns = inf; .* must be finite"),
    ("-inf arrival", "a.tsv", SEED + "1\t1\t-inf\n", r"arrival_time_ns = -inf; .* finite"),
    ("NaN token", "a.tsv", SEED + "nan\t1\t0\n", r"column 'input_toks' = 'nan' is not an integer"),
    ("JSONL NaN token", "a.jsonl", jsonl('{"input_toks": NaN, "output_toks": 1, '
                                         '"arrival_time_ns": 0}'),
     r"key 'input_toks' = nan is not an integer"),
    ("JSONL Infinity arrival", "a.jsonl", jsonl('{"input_toks": 1, "output_toks": 1, '
                                                '"arrival_time_ns": Infinity}'),
     r"arrival_time_ns = inf; arrival times must be finite"),
    ("text arrival", "a.tsv", SEED + "1\t1\tsoon\n",
     r"column 'arrival_time_ns' = 'soon' is not a number"),
    # arrivals that go backwards: refused (sort=True is the explicit opt-in)
    ("arrivals backwards", "a.tsv", SEED + "1\t1\t0\n1\t1\t9\n1\t1\t5\n",
     r"row 3 \(line 4\): arrival_time_ns goes backwards \(5 after 9\).*sort=True"),
    ("Azure backwards", "a.csv", AZURE + "2023-11-16 18:15:47,1,1\n2023-11-16 18:15:46,1,1\n",
     r"row 2 \(line 3\): TIMESTAMP goes backwards"),
    # headers and structure
    ("header of two schemas", "a.csv",
     ("input_toks,output_toks,arrival_time_ns,TIMESTAMP,ContextTokens,GeneratedTokens\n"
     "1,1,0,2023-11-16 18:15:46,1,1\n"),
     (r"line 1: the header holds both the seed trace columns \['input_toks', 'output_toks', "
     r"'arrival_time_ns'\] and the Azure trace columns \['TIMESTAMP', 'ContextTokens', "
     r"'GeneratedTokens'\]")),
    ("duplicate column", "a.tsv", "input_toks\tinput_toks\toutput_toks\tarrival_time_ns\n",
     r"line 1: duplicate column\(s\) \['input_toks'\]"),
    ("missing column", "a.csv", "input_toks,arrival_time_ns\n1,0\n",
     r"missing column\(s\) \['output_toks'\]; found columns \['input_toks', 'arrival_time_ns'\]"),
    ("too many fields", "a.tsv", SEED + "1\t1\t0\t9\n",
     r"row 1 \(line 2\): has 4 fields, the header has 3"),
    ("header only TSV", "a.tsv", SEED, r"has a header but no request rows \(0 requests\)"),
    ("header only Azure", "a.csv", AZURE + "\n\n", r"has a header but no request rows"),
    ("empty file", "a.tsv", "", r"file is empty"),
    ("blank lines only", "a.jsonl", "\n \n\t\n", r"file is empty"),
    # JSONL objects
    ("JSONL duplicate key", "a.jsonl", jsonl(req(), '{"input_toks": 1, "output_toks": 1, '
                                             '"output_toks": 7, "arrival_time_ns": 5}'),
     r"row 2 \(line 2\): duplicate key 'output_toks' \(values 1, 7\)"),
    ("JSONL list line", "a.jsonl", jsonl(req(), [1, 2, 3]),
     r"row 2 \(line 2\): expected a JSON object, got list"),
    ("JSONL string line", "a.jsonl", jsonl("\"hello\""), r"expected a JSON object, got str"),
    ("JSONL number line", "a.jsonl", jsonl("42"), r"expected a JSON object, got int"),
    ("JSONL null line", "a.jsonl", jsonl("null"), r"expected a JSON object, got NoneType"),
    ("JSONL invalid", "a.jsonl", jsonl(req(), "{oops"), r"row 2 \(line 2\): invalid JSON"),
    ("JSONL string tokens", "a.jsonl", jsonl(req(p="12")),
     r"key 'input_toks' = '12' is not an integer"),
    ("JSONL bool tokens", "a.jsonl", jsonl(req(p=True)),
     r"key 'input_toks' = True is not an integer"),
    ("JSONL 5000 digits", "a.jsonl", jsonl('{"input_toks": ' + "9" * 5000 + "}"),
     r"row 1 \(line 1\): invalid JSON \(Exceeds the limit"),
    ("JSONL deep nesting", "a.jsonl", "[" * 100_000 + "\n", r"row 1 \(line 1\): invalid JSON"),
    # huge values
    ("tokens above 2**31", "a.tsv", SEED + f"{2**31}\t1\t0\n",
     rf"row 1 \(line 2\): column 'input_toks' = '{2**31}' is too large; .*{MAX_TOKENS}"),
    ("tokens above int64", "a.tsv", SEED + f"1\t{2**70}\t0\n",
     r"column 'output_toks' = '1180591620717411303424' is too large"),
    ("JSONL tokens above 2**31", "a.jsonl", jsonl(req(p=2**40)),
     r"key 'input_toks' = 1099511627776 is out of range; .* 2147483647"),
    ("epoch-nanosecond arrivals", "a.tsv", SEED + "5\t1\t1700000000000000000\n",
     (r"row 1 \(line 2\): arrival_time_ns = 1\.7e\+18 is 1\.7e\+09 s .* below 1e\+08 s .*"
     r"Unix-epoch timestamp")),
    ("epoch-nanosecond JSONL", "a.jsonl", jsonl(req(a=1_731_000_000_000_000_000)),
     r"row 1 \(line 1\): arrival_time_ns = 1731000000000000000 is 1\.73e\+09 s"),
    ("arrival far beyond int64", "a.csv", SEED_CSV + "1,1,1e30\n",
     r"arrival_time_ns = 1e\+30 is 1e\+21 s"),
    ("JSONL 400-digit arrival", "a.jsonl", jsonl('{"input_toks": 1, "output_toks": 1, '
                                                 '"arrival_time_ns": ' + "9" * 400 + "}"),
     r"key 'arrival_time_ns' has 400 digits"),
    ("Azure span of decades", "a.csv", AZURE + "1970-01-01 00:00:00,1,1\n"
                                               "2023-11-16 18:15:46,1,1\n",
     (r"row 2 \(line 3\): TIMESTAMP = 2023-11-16T18:15:46\.000000000 is 1\.7e\+09 s .* after "
     r"the first request")),
    ("Azure year beyond ns range", "a.csv", AZURE + "9999-01-01 00:00:00,1,1\n",
     (r"'TIMESTAMP' = '9999-01-01 00:00:00' is not a valid date/time: the year must be between "
     r"1678 and 2261")),
    ("Azure impossible date", "a.csv", AZURE + "2023-02-30 00:00:00,1,1\n",
     r"'TIMESTAMP' = '2023-02-30 00:00:00' is not a valid date/time"),
    # not a text file at all
    ("random bytes", "a.tsv", bytes(range(256)) * 4, r"line 2: not UTF-8 text \(byte 0x80"),
    ("gzip file", "a.csv.gz", GZIP, r"not UTF-8 text .* not binary or compressed"),
    ("missing file", "nope.tsv", MISSING, r"nope\.tsv: trace file not found"),
    ("directory", "folder.tsv", DIR, r"folder\.tsv: is a directory, not a trace file"),
]


@pytest.mark.parametrize("case,name,content,pattern", TRACE_CASES,
                         ids=[c[0] for c in TRACE_CASES])
def test_trace_files_are_refused(case, name, content, pattern, tmp_path):
    path = place(tmp_path, name, content)
    with pytest.raises(ValueError, match=pattern) as info:
        load_trace(path)
    check_message(info.value, path)


def test_backwards_arrivals_are_refused_unless_sorting_is_asked_for(tmp_path):
    """Today's deliberate policy, kept: refuse by default; sort=True sorts stably."""
    path = place(tmp_path, "u.tsv", SEED + "1\t1\t9\n2\t2\t5\n3\t3\t9\n")
    with pytest.raises(ValueError, match=r"goes backwards"):
        load_trace(path)
    t = load_trace(path, sort=True)
    assert t.num_prompt_tokens.tolist() == [2, 1, 3]


def test_trace_limits_are_the_documented_ones(tmp_path):
    ok = place(tmp_path, "ok.tsv", SEED + f"{MAX_TOKENS}\t0\t{int(MAX_ARRIVAL_S * 1e9) - 10**9}\n")
    t = load_trace(ok)
    assert t.num_prompt_tokens.tolist() == [MAX_TOKENS]
    assert t.arrival_at[0] < MAX_ARRIVAL_S
    with pytest.raises(ValueError, match=r"arrivals must be below 1e\+08 s"):
        load_trace(place(tmp_path, "no.tsv", SEED + f"1\t0\t{int(MAX_ARRIVAL_S * 1e9)}\n"))


def test_u2028_inside_a_jsonl_string_is_not_a_line_break(tmp_path):
    path = place(tmp_path, "a.jsonl", jsonl(req(note="one\u2028two"), req(a=3)))
    assert len(load_trace(path)) == 2


# ============================================================ door 2: measurement files
def vidur(*rows: tuple) -> str:
    return VIDUR + "".join(VIDUR_ROW.format(tokens=t, up=u, norm=n) for t, u, n in rows)


def perf(*rows: tuple) -> str:
    return PERF + "".join(PERF_ROW.format(layer=l, input=i, kv=k, ns=n) for l, i, k, n in rows)


# (id, {file: content}, file or folder to load, pattern)
MEASUREMENT_CASES = [
    # our schema
    ("ours negative latency", {"m.csv": OURS + "llama-7b,qkv_proj,4,-1e-4\n"}, "m.csv",
     r"row 1 \(line 2\): column 'latency_s' = '-1e-4' must be a finite number of seconds > 0"),
    ("ours zero latency", {"m.csv": OURS + "llama-7b,qkv_proj,4,1e-4\nllama-7b,qkv_proj,8,0\n"},
     "m.csv", r"row 2 \(line 3\): column 'latency_s' = '0' must be a finite number"),
    ("ours NaN latency", {"m.csv": OURS + "llama-7b,qkv_proj,4,NaN\n"}, "m.csv",
     r"column 'latency_s' = 'NaN' must be a finite number of seconds > 0"),
    ("ours inf latency", {"m.csv": OURS + "llama-7b,qkv_proj,4,inf\n"}, "m.csv",
     r"column 'latency_s' = 'inf' must be a finite"),
    ("ours empty latency", {"m.csv": OURS + "llama-7b,qkv_proj,4,\n"}, "m.csv",
     r"row 1 \(line 2\): column 'latency_s' = '' is empty.*never read as 0"),
    ("ours text latency", {"m.csv": OURS + "llama-7b,qkv_proj,4,fast\n"}, "m.csv",
     r"column 'latency_s' = 'fast' is not a number"),
    ("ours fractional tokens", {"m.csv": OURS + "llama-7b,qkv_proj,4.5,1e-4\n"}, "m.csv",
     r"row 1 \(line 2\): column 'num_tokens' = '4\.5' is not a whole number.*never truncated"),
    ("ours fractional context",
     {"m.csv": "model,op,num_tokens,context,latency_s\nllama-7b,attention,1,99.5,1e-5\n"},
     "m.csv", r"column 'context' = '99\.5' is not a whole number"),
    ("ours fractional tp",
     {"m.csv": "model,op,num_tokens,tp,latency_s\nllama-7b,qkv_proj,1,1.5,1e-5\n"},
     "m.csv", r"column 'tp' = '1\.5' is not a whole number"),
    ("ours empty tp",
     {"m.csv": "model,op,num_tokens,tp,latency_s\nllama-7b,qkv_proj,1,,1e-5\n"},
     "m.csv", r"column 'tp' = '' is empty"),
    ("ours zero tokens", {"m.csv": OURS + "llama-7b,qkv_proj,0,1e-4\n"}, "m.csv",
     r"column 'num_tokens' = '0' is out of range; allowed: integers 1 \.\. 2147483647"),
    ("ours huge tokens", {"m.csv": OURS + "llama-7b,qkv_proj,1e12,1e-4\n"}, "m.csv",
     r"column 'num_tokens' = '1e12' is out of range"),
    ("ours attention without context",
     {"m.csv": "model,op,num_tokens,context,latency_s\nllama-7b,qkv_proj,1,,1e-5\n"
               "llama-7b,attention,1,,1e-5\n"},
     "m.csv", (r"row 2 \(line 3\): column 'context' = '' is empty; op 'attention' is an "
              r"attention op")),
    ("ours empty device",
     {"m.csv": "model,op,num_tokens,latency_s,device\nllama-7b,qkv_proj,1,1e-5,\n"},
     "m.csv", r"column 'device' = '' is empty"),
    ("ours conflicting duplicates",
     {"m.csv": OURS + "llama-7b,qkv_proj,4,1e-4\nllama-7b,ffn_up,4,1e-4\n"
                      "llama-7b,qkv_proj,4,2e-4\n"},
     "m.csv", (r"row 3 \(line 4\): column 'latency_s' = '2e-4' conflicts with row 1 \(line 2\) "
              r"= '1e-4' for the same point")),
    ("ours unknown model", {"m.csv": OURS + "gpt5,qkv_proj,4,1e-4\n"}, "m.csv",
     r"row 1 \(line 2\): column 'model' = 'gpt5': model name 'gpt5' is not in the catalog"),
    ("ours unknown op", {"m.csv": OURS + "llama-7b,conv,4,1e-4\n"}, "m.csv",
     r"row 1 \(line 2\): column 'op' = 'conv': op='conv' is not an op"),
    ("ours missing column", {"m.csv": "model,op,latency_s\nllama-7b,qkv_proj,1e-4\n"}, "m.csv",
     r"missing column\(s\) \['num_tokens'\]"),
    ("ours short row", {"m.csv": OURS + "llama-7b,qkv_proj,4\n"}, "m.csv",
     r"row 1 \(line 2\): has 3 fields, the header has 4"),
    ("ours header only", {"m.csv": OURS}, "m.csv", r"has a header but no data rows \(0 rows\)"),
    ("ours empty file", {"m.csv": ""}, "m.csv", r"file is empty"),
    ("ours binary", {"m.csv": bytes(range(255, -1, -1))}, "m.csv", r"line 1: not UTF-8 text"),
    ("ours two schemas",
     {"m.csv": "model,op,num_tokens,latency_s,layer_name,latency(ns)\nx,y,1,1,q_proj,1\n"},
     "m.csv", r"the header fits two formats \(LLMServingSim perf model and our schema"),
    ("missing file", {}, "none.csv", r"measurement file '.*none\.csv' does not exist"),
    # Vidur
    ("vidur NaN median", {"v/mlp.csv": vidur((1, 0.1, 0.01), (2, "nan", 0.01))}, "v/mlp.csv",
     (r"row 2 \(line 3\): column 'time_stats\.mlp_up_proj\.median' = 'nan' must be a finite "
     r"number of milliseconds > 0")),
    ("vidur zero median", {"v/mlp.csv": vidur((1, 0.1, 0))}, "v/mlp.csv",
     r"column 'time_stats\.input_layernorm\.median' = '0' must be a finite number"),
    ("vidur negative median", {"v/mlp.csv": vidur((1, -0.1, 0.01))}, "v/mlp.csv",
     r"column 'time_stats\.mlp_up_proj\.median' = '-0\.1'"),
    ("vidur one empty median", {"v/mlp.csv": vidur((1, 0.1, 0.01), (2, "", 0.01))},
     "v/mlp.csv", r"row 2 \(line 3\): column 'time_stats\.mlp_up_proj\.median' = '' is empty"),
    ("vidur fractional tokens", {"v/mlp.csv": vidur((1.5, 0.1, 0.01))}, "v/mlp.csv",
     r"column 'num_tokens' = '1\.5' is not a whole number"),
    ("vidur geometry changes",
     {"v/mlp.csv": vidur((1, 0.1, 0.01)) + "32,32,5120,11008,32000,True,2,1,0.1,0.01\n"},
     "v/mlp.csv", r"row 2 \(line 3\): column 'n_embd' = '5120' differs from row 1's '4096'"),
    ("vidur missing geometry",
     {"v/mlp.csv": VIDUR.replace("vocab_size,", "") + "32,32,4096,11008,True,1,1,0.1,0.01\n"},
     "v/mlp.csv", r"missing column\(s\) \['vocab_size'\] of a Vidur compute profile"),
    ("vidur bad boolean",
     {"v/mlp.csv": VIDUR + "32,32,4096,11008,32000,maybe,1,1,0.1,0.01\n"},
     "v/mlp.csv", r"column 'use_gated_mlp' = 'maybe' is not a boolean"),
    ("vidur no known op",
     {"v/mlp.csv": VIDUR.replace("time_stats.", "stats.") + "32,32,4096,11008,32000,True,1,1,"
                                                           "0.1,0.01\n"},
     "v/mlp.csv", r"no column 'time_stats\.<op>\.median' with values"),
    ("vidur header only", {"v/mlp.csv": VIDUR}, "v/mlp.csv", r"has a header but no data rows"),
    ("vidur in a folder", {"f/x/mlp.csv": vidur((1, 0.1, 0.01), (2, 0.2, "inf"))}, "f",
     r"x.mlp\.csv: row 2 \(line 3\): column 'time_stats\.input_layernorm\.median' = 'inf'"),
    # LLMServingSim 2.0 perf model
    ("perf negative latency", {"p.csv": perf(("q_proj", 1, 0, 100), ("k_proj", 1, 0, -5))},
     "p.csv", (r"row 2 \(line 3\): column 'latency\(ns\)' = '-5' must be a finite number of "
              r"nanoseconds > 0")),
    ("perf zero latency", {"p.csv": perf(("q_proj", 1, 0, 0))}, "p.csv",
     r"column 'latency\(ns\)' = '0' must be"),
    ("perf NaN latency", {"p.csv": perf(("q_proj", 1, 0, "nan"))}, "p.csv",
     r"column 'latency\(ns\)' = 'nan' must be"),
    ("perf fractional input", {"p.csv": perf(("q_proj", 2.5, 0, 100))}, "p.csv",
     r"column 'input' = '2\.5' is not a whole number"),
    ("perf empty kv_cache", {"p.csv": perf(("q_proj", 1, "", 100))}, "p.csv",
     r"column 'kv_cache' = '' is empty"),
    ("perf unknown layer", {"p.csv": perf(("q_proj", 1, 0, 100), ("conv", 1, 0, 100))},
     "p.csv", (r"row 2 \(line 3\): column 'layer_name' = 'conv' is not a layer this reader "
              r"knows")),
    ("perf unknown model", {"p.csv": PERF + "RTX3090,gpt5,q_proj,1,0,100\n"}, "p.csv",
     r"row 1 \(line 2\): column 'model' = 'gpt5': model name 'gpt5'"),
    ("perf missing column", {"p.csv": PERF.replace(",kv_cache", "")
                             + "RTX3090,gpt2,q_proj,1,100\n"}, "p.csv",
     r"missing column\(s\) \['kv_cache'\] of an LLMServingSim perf model table"),
    # LLMCompass
    ("llmcompass zero latency", {"c/matmul_a.csv": "M,N,K,latency_ms\n64,64,64,0\n"}, "c",
     r"matmul_a\.csv: row 1 \(line 2\): column 'latency_ms' = '0' must be a finite number"),
    ("llmcompass zero throughput", {"c/matmul_a.csv": "M,N,K,latency_ms\n64,64,64,0.1\n",
                                    "c/softmax_a.csv": "M,N,throughput_G_elements_per_s\n"
                                                       "64,64,0\n"}, "c",
     r"softmax_a\.csv: row 1 \(line 2\): column 'throughput_G_elements_per_s' = '0'"),
    ("llmcompass NaN throughput", {"c/matmul_a.csv": "M,N,K,latency_ms\n64,64,64,0.1\n",
                                   "c/gelu_a.csv": "num_elements,throughput_G_elements_per_s\n"
                                                   "1024,nan\n"}, "c",
     r"gelu_a\.csv: row 1 \(line 2\): column 'throughput_G_elements_per_s' = 'nan'"),
    ("llmcompass fractional size", {"c/matmul_a.csv": "M,N,K,latency_ms\n64.5,64,64,0.1\n"},
     "c", r"column 'M' = '64\.5' is not a whole matrix size"),
    ("llmcompass missing column", {"c/matmul_a.csv": "M,N,latency_ms\n64,64,0.1\n"}, "c",
     r"matmul_a\.csv: missing column\(s\) \['K'\]"),
    ("llmcompass unknown table", {"c/matmul_a.csv": "M,N,K,latency_ms\n64,64,64,0.1\n",
                                  "c/conv_a.csv": "x\n1\n"}, "c",
     r"conv_a\.csv: not an LLMCompass table this reader knows"),
    ("llmcompass one table alone", {"c/matmul_a.csv": "M,N,K,latency_ms\n64,64,64,0.1\n"},
     "c/matmul_a.csv", r"looks like one LLMCompass matmul table; pass the folder"),
    ("folder of nothing", {"e/readme.txt": "hi"}, "e",
     r"holds neither LLMCompass tables \(matmul_\*\.csv\) nor Vidur profiles"),
]


@pytest.mark.parametrize("case,files,target,pattern", MEASUREMENT_CASES,
                         ids=[c[0] for c in MEASUREMENT_CASES])
def test_measurement_files_are_refused(case, files, target, pattern, tmp_path):
    for name, content in files.items():
        place(tmp_path, name, content)
    path = tmp_path / target
    with pytest.raises(ValueError, match=pattern) as info:
        load_measurements(path)
    check_message(info.value, path)


def test_identical_repeats_are_kept_and_whole_floats_are_counts(tmp_path):
    path = place(tmp_path, "m.csv", OURS + "llama-7b,qkv_proj,4,1e-4\nllama-7b,qkv_proj,4.0,1e-4\n"
                                           "llama-7b,qkv_proj,8,2e-4\n")
    table = load_measurements(path)
    assert [r.num_tokens for r in table] == [4, 4, 8]
    assert table.latency.tolist() == [1e-4, 1e-4, 2e-4]


# ============================================================ door 3: validation inputs
# (id, file name, content, pattern); requests JSON without start_times gets 2 arrivals
REQUEST_CASES = [
    ("requests header only", "r.csv", REQ, r"has a header but no data rows \(0 rows\)"),
    ("requests empty", "r.csv", "", r"file is empty"),
    ("requests NaN", "r.csv", REQ + "0,0.1,1\n0,nan,1\n",
     r"row 2 \(line 3\): column 'first_token' = 'nan' must be a finite number of seconds >= 0"),
    ("requests negative", "r.csv", REQ + "-1,0,1\n",
     r"row 1 \(line 2\): column 'arrival' = '-1' must be a finite number of seconds >= 0"),
    ("requests empty cell", "r.csv", REQ + "0,0.5,\n", r"column 'finish' = '' is empty"),
    ("requests text", "r.csv", REQ + "0,soon,1\n", r"column 'first_token' = 'soon' is not a"),
    ("requests all zero", "r.csv", REQ + "0,0,0\n0,0,0\n",
     r"all 2 requests arrive and finish at the same instant \(a span of 0 s"),
    ("requests out of order", "r.csv", REQ + "0,0.1,1\n1,0.5,2\n",
     (r"line 3 \(data row 1, counting from 0\): needs arrival <= first_token <= finish, got "
     r"arrival=1\.0, first_token=0\.5")),
    ("requests two arrival columns", "r.csv", "arrival,arrival_at,first_token,finish\n0,0,1,2\n",
     r"columns \['arrival', 'arrival_at'\] all give the 'arrival' time"),
    ("requests missing column", "r.csv", "arrival,finish\n0,1\n",
     r"lack a 'first_token' column"),
    ("requests fractional tokens", "r.csv", ("arrival,first_token,finish,num_output_tokens\n"
                                            "0,0.1,1,2.5\n"),
     r"column 'num_output_tokens' = '2\.5' is not a whole number"),
    ("requests binary", "r.csv", GZIP, r"not UTF-8 text"),
    ("requests directory", "r.csv", DIR, r"is a directory"),
    ("requests missing", "r.csv", MISSING, r"does not exist"),
    # vLLM benchmark_serving JSON
    ("json list", "b.json", "[1, 2]", r"expected a JSON object .* got list"),
    ("json number", "b.json", "3", r"expected a JSON object .* got int"),
    ("json invalid", "b.json", "{\"ttfts\": [0.1,", r"line 1 column \d+: not valid JSON"),
    ("json empty", "b.json", "", r"not valid JSON"),
    ("json duplicate key", "b.json", bench()[:-1] + ', "ttfts": [1, 2]}',
     r"duplicate key 'ttfts'"),
    ("json missing ttfts", "b.json", bench(ttfts=None), r"has no 'ttfts' list"),
    ("json missing output_lens", "b.json", bench(output_lens=None), r"has no 'output_lens' list"),
    ("json missing itls and e2els", "b.json", bench(itls=None),
     r"has neither 'e2els' nor 'itls'"),
    ("json unequal lengths", "b.json", bench(output_lens=[3]),
     r"key 'output_lens' has 1 items but 'ttfts' has 2; .* equal lengths"),
    ("json unequal itls", "b.json", bench(itls=[[0.01]]), r"key 'itls' has 1 items"),
    ("json unequal input_lens", "b.json", bench(input_lens=[5, 6, 7]),
     r"key 'input_lens' has 3 items"),
    ("json string item", "b.json", bench(ttfts=[0.1, "0.2"]),
     r"key 'ttfts' item 1 = '0\.2' is not a finite number of seconds >= 0"),
    ("json null item", "b.json", bench(ttfts=[None, 0.2]), r"key 'ttfts' item 0 = None is not"),
    ("json bool item", "b.json", bench(output_lens=[True, 2]),
     r"key 'output_lens' item 0 = True is not a whole number"),
    ("json NaN item", "b.json", bench()[:-1] + ', "e2els": [NaN, 1.0]}',
     r"key 'e2els' item 0 = nan is not a finite number"),
    ("json negative ttft", "b.json", bench(ttfts=[-0.1, 0.2]), r"key 'ttfts' item 0 = -0\.1"),
    ("json string list", "b.json", bench(ttfts="0.1,0.2"),
     r"key 'ttfts' = '0\.1,0\.2' is not a list"),
    ("json itl not a list", "b.json", bench(itls=[0.1, [0.2]]),
     r"key 'itls' item 0 = 0\.1 is not a list of finite numbers"),
    ("json itl strings", "b.json", bench(itls=[["a"], [0.2]]), r"key 'itls' item 0 = \['a'\]"),
    ("json fractional output_lens", "b.json", bench(output_lens=[2.5, 2]),
     r"key 'output_lens' item 0 = 2\.5 is not a whole number >= 0"),
    ("json zero requests", "b.json", bench(ttfts=[], itls=[], input_lens=[], output_lens=[]),
     r"key 'ttfts' is an empty list \(0 requests\)"),
    ("json start_times text", "b.json", bench(start_times=["x", 1.0]),
     r"key 'start_times' item 0 = 'x' is not a finite number of seconds"),
    ("json e2e before first token", "b.json", bench(e2els=[0.05, 1.0]),
     r"request 0 \(item 0 of the lists\): needs arrival <= first_token <= finish"),
    ("json binary", "b.json", bytes(range(128, 256)), r"not UTF-8 text"),
]


@pytest.mark.parametrize("case,name,content,pattern", REQUEST_CASES,
                         ids=[c[0] for c in REQUEST_CASES])
def test_measured_request_files_are_refused(case, name, content, pattern, tmp_path):
    path = place(tmp_path, name, content)
    with pytest.raises(ValueError, match=pattern) as info:
        load_measured_requests(path, arrivals=[0.0, 1.0])
    check_message(info.value, path)


CURVE_CASES = [
    ("curve header only", "c.csv", CURVE, r"has a header but no data rows \(0 rows\)"),
    ("curve empty", "c.csv", "", r"file is empty"),
    ("curve NaN", "c.csv", CURVE + "0,1,1\n0.5,nan,1\n",
     (r"row 2 \(line 3\): column 'prompt_throughput' = 'nan' must be a finite number of "
     r"tokens/s >= 0")),
    ("curve negative", "c.csv", CURVE + "0,1,-3\n",
     r"column 'generation_throughput' = '-3' must be a finite number"),
    ("curve empty cell", "c.csv", CURVE + "0,,1\n", r"column 'prompt_throughput' = '' is empty"),
    ("curve all zero", "c.csv", CURVE + "0,0,0\n0.5,0,0\n1,0,0\n",
     r"prompt and generation throughput are 0 in all 3 intervals"),
    ("curve negative time", "c.tsv", ("time_duration\tprompt_throughput\tgeneration_throughput\n"
                                     "-0.5\t1\t1\n"),
     r"column 'time_duration' = '-0\.5' must be a finite number of seconds >= 0"),
    ("curve times backwards", "c.csv", CURVE + "0,1,1\n0.5,1,1\n0.5,1,1\n",
     r"row 3 \(line 4\): column 'time_duration' = '0\.5' does not increase"),
    ("curve uneven steps", "c.csv", CURVE + "0,1,1\n0.5,1,1\n1.5,1,1\n",
     (r"row 3 \(line 4\): column 'time_duration' = '1\.5' is 1 s after the previous row, but "
     r"the first step is 0\.5 s")),
    ("curve starts late", "c.csv", CURVE + "10,1,1\n10.5,1,1\n",
     r"row 1 \(line 2\): column 'time_duration' = '10' must be 0 .* or 0\.5"),
    ("curve tiny interval", "c.csv", CURVE + "0,1,1\n1e-9,1,1\n",
     r"the time_duration step is 1e-09 s; intervals must be >= 0\.001 s"),
    ("curve text", "c.csv", CURVE + "0,many,1\n", r"column 'prompt_throughput' = 'many' is not a"),
    ("curve missing column", "c.csv", "time duration,prompt throughput\n0,1\n",
     r"needs columns \['generation_throughput', 'prompt_throughput', 'time_duration'\]"),
    ("curve duplicate column", "c.csv", ("time duration,time_duration,prompt throughput,"
                                        "generation throughput\n0,0,1,1\n"),
     r"name \['time_duration'\] twice"),
    ("curve wrong delimiter", "c.tsv", CURVE + "0,1,1\n", r"needs columns"),
    ("curve short row", "c.csv", CURVE + "0,1\n", r"row 1 \(line 2\): has 2 fields"),
    ("curve binary", "c.csv", bytes(range(256)), r"not UTF-8 text"),
    ("curve missing", "c.csv", MISSING, r"throughput curve '.*c\.csv' does not exist"),
    ("curve directory", "c.csv", DIR, r"is a directory"),
]


@pytest.mark.parametrize("case,name,content,pattern", CURVE_CASES,
                         ids=[c[0] for c in CURVE_CASES])
def test_curve_files_are_refused(case, name, content, pattern, tmp_path):
    path = place(tmp_path, name, content)
    with pytest.raises(ValueError, match=pattern) as info:
        load_throughput_curve(path)
    check_message(info.value, path)


def test_zero_measured_values_are_undefined_never_inf():
    measured = Curve(np.array([0.0, 0.5]), np.array([10.0, 20.0]), np.array([0.0, 0.0]))
    simulated = Curve(np.array([0.0, 0.5]), np.array([10.0, 10.0]), np.array([5.0, 5.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        errors = compare_curves(measured, simulated)
    assert errors["prompt_mean_error"] == pytest.approx(20 / 30 - 1)
    assert math.isnan(errors["generation_mean_error"])
    assert math.isnan(errors["generation_interval_error"])
    assert not any(math.isinf(v) for v in errors.values())
    with pytest.raises(ValueError, match="the measured curve has no intervals"):
        compare_curves(Curve(np.zeros(0), np.zeros(0), np.zeros(0)), simulated)

    frame = pd.DataFrame({"arrival": [0.0, 1.0], "first_token": [0.0, 1.0],
                          "finish": [2.0, 3.0], "num_output_tokens": [1.0, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = compare_requests(frame, frame.assign(first_token=[0.1, 1.1]))
    assert not np.isinf(table["error"]).any()
    assert math.isnan(table.loc["ttft_mean", "error"])
    assert table.loc["ttft_mean", "note"] == "undefined: the measured value is 0"
    assert table.loc["tpot_mean", "note"] == "undefined: the measurements do not give this metric"
    assert table.loc["e2e_mean", "error"] == 0.0 and table.loc["e2e_mean", "note"] == ""


# ------------------------------------------------------------------ the CLI door
def run_cli(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.fixture
def no_simulation(monkeypatch):
    """Make any simulation an error the CLI does not catch: bad files must stop before."""
    from llmsim_nb.instance.simulator import Simulator

    def refuse(self, *args, **kwargs):
        raise AssertionError("a simulation ran for a bad input file")

    monkeypatch.setattr(Simulator, "run", refuse)


CLI_CASES = [
    ("--curve", "c.csv", CURVE, "has a header but no data rows"),
    ("--curve", "c.csv", CURVE + "0,0,0\n", "are 0 in all 1 intervals"),
    ("--curve", "c.csv", CURVE + "0,nan,1\n", "'prompt_throughput' = 'nan'"),
    ("--measured", "r.csv", REQ + "0,0,0\n", "a span of 0 s"),
    ("--measured", "r.csv", REQ + "0,-1,1\n", "'first_token' = '-1'"),
    ("--measured", "b.json", bench(output_lens=[1, 2, 3]), "key 'output_lens' has 3 items"),
    ("--measured", "b.json", bench(ttfts=["x", "y"]), "key 'ttfts' item 0 = 'x'"),
    ("--measured", "b.json", "[]", "expected a JSON object"),
]


@pytest.mark.parametrize("flag,name,content,message", CLI_CASES,
                         ids=[f"{c[0]} {c[3]}" for c in CLI_CASES])
def test_cli_validate_refuses_bad_files_before_simulating(flag, name, content, message,
                                                         tmp_path, capsys, no_simulation):
    path = place(tmp_path, name, content)
    trace = place(tmp_path, "t.tsv", SEED + "8\t4\t0\n16\t2\t10000000\n")
    code = run_cli(["validate", flag, str(path), "--model_name", "gpt2", "--dataset", str(trace)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmsim: error: "), err
    assert message in lines[0] and str(path) in lines[0]


def test_cli_validate_prints_undefined_not_nan_or_inf(tmp_path, capsys):
    trace = place(tmp_path, "t.tsv", SEED + "8\t4\t0\n16\t2\t10000000\n")
    curve = place(tmp_path, "c.csv", CURVE + "0,48,0\n")  # no generation measured
    measured = place(tmp_path, "r.csv", REQ + "0,0,0.5\n0.01,0.01,0.6\n")  # TTFT 0
    code = run_cli(["validate", "--curve", str(curve), "--measured", str(measured),
                    "--model_name", "gpt2", "--dataset", str(trace)])
    out = capsys.readouterr().out
    assert code == 0
    assert "undefined: the measured value is 0" in out
    assert re.search(r"generation_mean_error\s+undefined \(the measured generation", out)
    assert not re.search(r"\b(nan|inf)\b|nan%|inf%", out, re.IGNORECASE), out


# ============================================================ fuzz: every reader
NASTY = ["", " ", "nan", "NaN", "inf", "-inf", "-1", "0", "1", "7", "1.5", "2.0", "1e3",
         "1e400", "-0", "+7", "1_0", "\u0661", "0x10", str(2**31), str(2**63), str(2**70),
         "1700000000000000000", '"', "'", "\x00", "True", "null", "\t", ",", "{", "[1]", "a",
         "\u2028", "\r", "\n", "2023-11-16 18:15:46.5", "9999-01-01 00:00:00"]
NASTY_JSON = [None, True, False, 0, -1, 1, 2.5, 3.0, float("nan"), float("inf"), 2**31,
              2**64, 10**30, "", "1", "x", [], [1], {}, {"a": 1}, [[0.1]], [None], ["a"]]
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def edited_grid(draw, rows: list[list[str]]) -> list[list[str]]:
    """1-3 random edits of a table: swap two cells, or put a nasty value in one."""
    rows = [list(r) for r in rows]
    for _ in range(draw(st.integers(1, 3))):
        r = draw(st.integers(0, len(rows) - 1))
        c = draw(st.integers(0, len(rows[r]) - 1))
        if draw(st.booleans()):
            r2 = draw(st.integers(0, len(rows) - 1))
            c2 = draw(st.integers(0, len(rows[r2]) - 1))
            rows[r][c], rows[r2][c2] = rows[r2][c2], rows[r][c]
        else:
            rows[r][c] = draw(st.sampled_from(NASTY) | st.text(max_size=4))
    return rows


def variants(text: str, delimiter: str):
    """Random bytes, a truncation of ``text``, or random cell edits of it (all as bytes)."""
    data = text.encode()
    grid = [line.split(delimiter) for line in text.splitlines()]
    return st.one_of(
        st.binary(max_size=200),
        st.integers(0, len(data)).map(lambda k: data[:k]),
        edited_grid(grid).map(lambda g: "\n".join(delimiter.join(r) for r in g).encode(
            "utf-8", "surrogatepass") + b"\n"),
    )


def outcome(load, path: Path):
    """``load(path)``, or None after checking the clean one-line ValueError."""
    try:
        return load(path)
    except ValueError as exc:
        check_message(exc, path)
        return None


def plain_rows(data: bytes, delimiter: str, header: tuple[str, ...]) -> list[dict] | None:
    """The rows of ``data`` as dicts when it is a plain table with exactly ``header``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if '"' in text:
        return None  # quoting: leave the CSV dialect to the reader
    lines = [x for x in re.split(r"\r\n|\r|\n", text) if x.strip()]
    if not lines:
        return None
    names = [h.strip() for h in lines[0].split(delimiter)]
    if sorted(names) != sorted(header):
        return None
    rows = [[c.strip() for c in x.split(delimiter)] for x in lines[1:]]
    if any(len(r) != len(names) for r in rows):
        return None
    return [dict(zip(names, r)) for r in rows]


def check_trace(trace, expected: list[dict] | None, names=("input_toks", "output_toks",
                                                           "arrival_time_ns")):
    assert isinstance(trace, Trace) and len(trace) >= 1
    assert np.all(trace.num_prompt_tokens >= 1) and np.all(trace.num_output_tokens >= 0)
    assert np.all(trace.num_prompt_tokens <= MAX_TOKENS)
    assert np.all(np.isfinite(trace.arrival_at)) and np.all(np.diff(trace.arrival_at) >= 0)
    assert np.all(trace.arrival_at < MAX_ARRIVAL_S)
    if expected is not None:  # a correct parse: the file's own numbers, in file order
        p, o, a = names
        assert trace.num_prompt_tokens.tolist() == [int(r[p]) for r in expected]
        assert trace.num_output_tokens.tolist() == [int(r[o]) for r in expected]
        if a == "arrival_time_ns":
            assert trace.arrival_at.tolist() == [float(r[a]) / 1e9 for r in expected]
        else:
            ns = np.array([r[a] for r in expected]).astype("datetime64[ns]").astype(np.int64)
            assert trace.arrival_at.tolist() == ((ns - ns[0]) / 1e9).tolist()


AZURE_COLUMNS_ORDER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
SEED_TEXT = SEED + "10\t70\t46926808\n22\t0\t347938952\n5\t3\t347938952\n"
SEED_CSV_TEXT = SEED_TEXT.replace("\t", ",")
AZURE_TEXT = (AZURE + "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n"
              "2023-11-16 18:15:51,1,0\n")


@FUZZ
@given(variants(SEED_TEXT, "\t"))
def test_fuzz_trace_tsv(tmp_path, data):
    path = place(tmp_path, "fuzz.tsv", data)
    trace = outcome(load_trace, path)
    if trace is not None:
        check_trace(trace, plain_rows(data, "\t", ("input_toks", "output_toks",
                                                   "arrival_time_ns")))


@FUZZ
@given(variants(SEED_CSV_TEXT, ","))
def test_fuzz_trace_csv(tmp_path, data):
    path = place(tmp_path, "fuzz.csv", data)
    trace = outcome(load_trace, path)
    if trace is not None:
        check_trace(trace, plain_rows(data, ",", ("input_toks", "output_toks",
                                                  "arrival_time_ns")))


@FUZZ
@given(variants(AZURE_TEXT, ","))
def test_fuzz_trace_azure(tmp_path, data):
    path = place(tmp_path, "fuzz.csv", data)
    trace = outcome(load_trace, path)
    if trace is not None:
        check_trace(trace, plain_rows(data, ",", AZURE_COLUMNS_ORDER),
                    ("ContextTokens", "GeneratedTokens", "TIMESTAMP"))

JSONL_BASE = [req(10, 70, 46926808), req(22, 0, 347938952), req(5, 3, 347938952.5)]


@st.composite
def jsonl_variant(draw) -> bytes:
    """Random bytes, a truncation, or JSONL objects with values replaced/swapped/dropped."""
    text = jsonl(*JSONL_BASE)
    kind = draw(st.sampled_from(["bytes", "truncate", "edit"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "truncate":
        return text.encode()[:draw(st.integers(0, len(text)))]
    objects = [dict(o) for o in JSONL_BASE]
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        o = draw(st.sampled_from(objects))
        key = draw(st.sampled_from(sorted(o) + ["extra"]))
        action = draw(st.sampled_from(["set", "drop", "swap"]))
        if action == "set":
            o[key] = draw(st.sampled_from(NASTY_JSON))
        elif action == "drop":
            o.pop(key, None)
        else:
            other = draw(st.sampled_from(objects))
            k2 = draw(st.sampled_from(sorted(other)))
            if key in o:
                o[key], other[k2] = other[k2], o[key]
    for o in objects:
        line = json.dumps(o)
        if draw(st.integers(0, 9)) == 0:  # a duplicate key
            line = line[:-1] + ', "input_toks": 3}'
        if draw(st.integers(0, 14)) == 0:  # not an object
            line = draw(st.sampled_from(["[1, 2]", "7", "null", "\"x\"", "{"]))
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


@FUZZ
@given(jsonl_variant())
def test_fuzz_trace_jsonl(tmp_path, data):
    path = place(tmp_path, "fuzz.jsonl", data)
    trace = outcome(load_trace, path)
    if trace is None:
        return
    objects = [json.loads(x) for x in data.decode("utf-8-sig").splitlines() if x.strip()]
    expected = [{"input_toks": o["input_toks"], "output_toks": o["output_toks"],
                 "arrival_time_ns": o["arrival_time_ns"]} for o in objects]
    check_trace(trace, expected)


OURS_TEXT = (OURS.strip() + ",context\nllama-7b,qkv_proj,4,1e-4,\nllama-7b,ffn_up,16,2.5e-4,\n"
             "llama-7b,attention,1,3e-5,128\n")


@FUZZ
@given(variants(OURS_TEXT, ","))
def test_fuzz_measurement_csv(tmp_path, data):
    path = place(tmp_path, "fuzz.csv", data)
    table = outcome(load_measurements, path)
    if table is None:
        return
    assert len(table) >= 1
    assert all(r.latency > 0 and math.isfinite(r.latency) and r.num_tokens >= 1 for r in table)
    rows = plain_rows(data, ",", ("model", "op", "num_tokens", "latency_s", "context"))
    if rows is not None:
        assert table.latency.tolist() == [float(r["latency_s"]) for r in rows]
        assert [r.num_tokens for r in table] == [int(float(r["num_tokens"])) for r in rows]


VIDUR_TEXT = vidur((1, 0.1, 0.01), (64, 0.2, 0.02), (64, 0.21, 0.02))
PERF_TEXT = perf(("q_proj", 1, 0, 100), ("k_proj", 1, 0, 50), ("attn", 1, 128, 900),
                 ("q_proj", 1, 0, 110))


@FUZZ
@given(variants(VIDUR_TEXT, ","))
def test_fuzz_vidur_profile(tmp_path, data):
    path = place(tmp_path, "llama/mlp.csv", data)
    table = outcome(load_measurements, path)
    if table is not None:
        assert len(table) >= 1 and all(r.latency > 0 and math.isfinite(r.latency) for r in table)


@FUZZ
@given(variants(PERF_TEXT, ","))
def test_fuzz_perf_model(tmp_path, data):
    path = place(tmp_path, "perf.csv", data)
    table = outcome(load_measurements, path)
    if table is not None:
        assert len(table) >= 1 and all(r.latency > 0 and math.isfinite(r.latency) for r in table)


CURVE_TEXT = CURVE + "0,95.6,67.7\n0.5,143.7,219.5\n1,208.9,0\n"


@FUZZ
@given(variants(CURVE_TEXT, ","))
def test_fuzz_curve_csv(tmp_path, data):
    path = place(tmp_path, "fuzz.csv", data)
    curve = outcome(load_throughput_curve, path)
    if curve is None:
        return
    assert isinstance(curve, Curve) and len(curve.start) >= 1
    assert curve.interval >= 1e-3 and abs(curve.start[0]) < 1e-6 * max(1.0, curve.interval)
    for x in (curve.prompt, curve.generation):
        assert np.all(np.isfinite(x)) and np.all(x >= 0)
    assert curve.prompt.any() or curve.generation.any()
    rows = plain_rows(data, ",", ("time duration", "prompt throughput", "generation throughput"))
    if rows is not None:
        assert curve.prompt.tolist() == [float(r["prompt throughput"]) for r in rows]


REQUEST_TEXT = REQ.strip() + ",num_output_tokens\n0,0.1,1.5,4\n0.5,0.7,1.2,1\n1,1.5,3,9\n"


@FUZZ
@given(variants(REQUEST_TEXT, ","))
def test_fuzz_requests_csv(tmp_path, data):
    path = place(tmp_path, "fuzz.csv", data)
    frame = outcome(load_measured_requests, path)
    if frame is None:
        return
    assert len(frame) >= 1 and np.isfinite(frame.to_numpy()).all()
    assert (frame["arrival"] <= frame["first_token"]).all()
    assert (frame["first_token"] <= frame["finish"]).all()


@st.composite
def bench_variant(draw) -> bytes:
    """Random bytes, a truncation, or benchmark JSON with keys and items edited."""
    base = json.loads(bench(start_times=[100.0, 100.5]))
    text = json.dumps(base)
    kind = draw(st.sampled_from(["bytes", "truncate", "edit"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "truncate":
        return text.encode()[:draw(st.integers(0, len(text)))]
    data = {k: list(v) for k, v in base.items()}
    keys = sorted(data) + ["e2els"]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["item", "list", "drop", "shorten", "swap"]))
        if action == "item" and isinstance(data.get(key), list) and data[key]:
            data[key][draw(st.integers(0, len(data[key]) - 1))] = draw(st.sampled_from(NASTY_JSON))
        elif action == "list":
            data[key] = draw(st.sampled_from(NASTY_JSON))
        elif action == "drop":
            data.pop(key, None)
        elif action == "shorten" and isinstance(data.get(key), list) and data[key]:
            data[key] = data[key][:-1]
        elif action == "swap":
            k2 = draw(st.sampled_from(keys))
            if key in data and k2 in data:
                data[key], data[k2] = data[k2], data[key]
    out = json.dumps(data)
    if draw(st.integers(0, 9)) == 0:
        out = draw(st.sampled_from(["[]", "7", "null", '"x"', out + out]))
    return out.encode()


@FUZZ
@given(bench_variant())
def test_fuzz_benchmark_json(tmp_path, data):
    path = place(tmp_path, "bench.json", data)
    frame = outcome(lambda p: load_measured_requests(p, arrivals=[0.0, 1.0]), path)
    if frame is None:
        return
    assert len(frame) >= 1 and np.isfinite(frame.to_numpy()).all()
    assert (frame["arrival"] <= frame["first_token"]).all()
    assert (frame["first_token"] <= frame["finish"]).all()


# ------------------------------------------------------------ fuzz: real files, truncated
REAL = [("traces/share-gpt-req100-rate10.tsv", load_trace),
        ("traces/azure_llm_2023_conv.csv", load_trace),
        ("calibration/vidur_a100/compute/microsoft/phi-2/mlp.csv", load_measurements),
        ("calibration/perf_model_RTX3090.csv", load_measurements),
        ("paper/fig_numbers/evaluation1/vllm-gpt7b.csv", load_throughput_curve)]


@pytest.mark.parametrize("name,load", REAL, ids=[r[0].split("/")[-1] for r in REAL])
def test_fuzz_truncated_real_files(name, load, tmp_path):
    source = SHARED / name
    if not source.is_file():
        pytest.skip(f"shared data absent: {source}")
    data = source.read_bytes()[:6000]  # the head is enough; keeps the test quick
    suffix = source.suffix
    target = tmp_path / source.parent.name / f"cut{suffix}"
    if source.name == "mlp.csv":
        target = tmp_path / "phi-2" / "mlp.csv"

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(data)))
    def check(k):
        place(tmp_path, str(target.relative_to(tmp_path)), data[:k])
        outcome(load, target)

    check()


@pytest.mark.parametrize("columns, pattern", [
    (dict(arrival_at=[0.0, 1.7e9]), r"arrival_at\[1\] = 1700000000.0 s; must be below 1e\+08 s .*Unix-epoch"),
    (dict(num_prompt_tokens=[1, 2**31]), r"num_prompt_tokens\[1\] = 2147483648; must be <= 2147483647"),
    (dict(num_output_tokens=[2**40, 1]), r"num_output_tokens\[0\] = 1099511627776; must be <= 2147483647"),
])
def test_in_memory_traces_have_the_file_doors_limits(columns, pattern):
    """A Trace built in Python is held to the same limits as a trace file."""
    from llmsim_nb.workload import Trace, TraceError
    base = dict(arrival_at=[0.0, 1.0], num_prompt_tokens=[4, 4], num_output_tokens=[2, 2])
    with pytest.raises(TraceError, match=pattern):
        Trace(**{**base, **columns})


def test_a_token_cell_of_thousands_of_digits_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("input_toks\toutput_toks\tarrival_time_ns\n" + "9" * 6000 + "\t5\t0\n")
    with pytest.raises(TraceError, match=r"t.tsv: .*'input_toks' = '9{20}\.\.\. \(6000 "
                                         r"characters\)' is too large"):
        load_trace(path)
