"""Dataset-scale figures of harmony_np (issue 13): ``python benchmarks/scale.py``.

Cases (each can be left out, see --help):

* ``parse_table``: an in-memory ``pa.Table`` of completions (``large_list<uint32>`` tokens) to
  the ``messages`` column, tokens/s; ``MessageTable.to_arrow`` of the same batch, and
  ``RaggedTokens.to_arrow``.
* ``cli``: ``harmony-np parse big.parquet -o out.parquet`` in a child process: wall time, tokens/s
  end to end, peak RSS (measured by a parent of its own with ``getrusage``) and both files' sizes.
* ``ray``: Ray Data reading a Parquet file of completions and parsing it with
  ``CompletionParser`` on an actor pool of 1 and of 2; Ray's own overhead beside it: the
  ``ray.init`` start-up and the same pipeline with a callable that does nothing; and the same
  completions as 10 Parquet files, each read, parsed and written by an actor itself
  (``parquet_io.ParquetFiles``), on 1 and 2 actors, with when the actors' first call began (Ray's
  start) and the span of the work from there to the last call's end.
* ``render``: ``ChatRenderer`` on chat rows against ``apply_chat_template`` of the same rows and
  against the template path (``hf_template.py``: jinja2 and tiktoken per row, as transformers).

The completions are a few thousand distinct ones (30-500 tokens, analysis + final, one in five
with a tool call) repeated to the size asked: the parse kernels keep nothing between rows, so
repetition does not flatter them. Every figure printed is measured in this run; the machine is
shared, so compare ratios measured side by side.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import scenarios  # noqa: E402
from compare import template_tool as load_template_tool  # noqa: E402

import harmony_np as h  # noqa: E402

DATE = "2025-08-05"


def _seconds(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_in_memory(enc: Any, rows: int) -> Dict[str, Any]:
    """parse_table to messages, MessageTable.to_arrow and RaggedTokens.to_arrow, best of 3."""
    import numpy as np

    from harmony_np.arrow import parse_table

    table = scenarios.arrow_token_table(h, rows)
    n_tokens = len(table.column("tokens").combine_chunks().values)
    parse_table(enc, table.slice(0, 100))  # kernels from numba's cache: not what is measured
    out: Dict[str, Any] = {"rows": rows, "tokens": n_tokens}
    best = min(_seconds(lambda: parse_table(enc, table)) for _ in range(3))
    out["parse_table_s"], out["parse_table_tokens_per_s"] = best, n_tokens / best
    tokens = table.column("tokens").combine_chunks()
    flat = np.frombuffer(tokens.values.buffers()[1], np.uint32, len(tokens.values), tokens.values.offset)
    offsets = np.frombuffer(tokens.buffers()[1], np.int64, rows + 1, tokens.offset)
    mt = enc.parse_batch(flat, offsets=offsets)
    out["parse_batch_s"] = min(_seconds(lambda: enc.parse_batch(flat, offsets=offsets)) for _ in range(3))
    best = min(_seconds(mt.to_arrow) for _ in range(3))
    out["message_table_rows"] = len(mt.completion)
    out["message_table_to_arrow_s"], out["message_table_to_arrow_tokens_per_s"] = best, n_tokens / best
    out["to_messages_s"] = _seconds(mt.to_messages)
    from harmony_np.ragged import RaggedTokens

    ragged = RaggedTokens(flat, offsets)
    out["ragged_to_arrow_s"] = min(_seconds(ragged.to_arrow) for _ in range(3))
    return out


_PEAK = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True)
wall = time.perf_counter() - t0
sys.stderr.write(r.stderr.decode()[-2000:])
print(r.returncode, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def _cli_run(args: List[str]) -> Dict[str, float]:
    r = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "harmony_np"] + args, capture_output=True, text=True)
    rc, wall, peak = r.stdout.split()
    if rc != "0":
        raise RuntimeError(f"harmony-np {' '.join(args)} exited {rc}: {r.stderr}")
    return {"wall_s": float(wall), "peak_rss_bytes": int(peak)}


def bench_cli(enc: Any, rows: int, folder: str, row_group: int, max_words: int) -> Dict[str, Any]:
    """``harmony-np parse big.parquet -o out.parquet``: wall time, tokens/s, peak RSS, sizes; and
    the same command on 100 rows (the process's fixed cost and RSS: interpreter, kernels, BPE).
    The input's row groups are ``row_group`` rows (the reader holds one decoded)."""
    import pyarrow.parquet as pq

    table = scenarios.arrow_token_table(h, rows, max_words=max_words)
    n_tokens = len(table.column("tokens").combine_chunks().values)
    big, small = os.path.join(folder, "big.parquet"), os.path.join(folder, "small.parquet")
    # uncompressed, no dictionary: the file's size is its data's (repeated rows would compress)
    pq.write_table(table, big, row_group_size=row_group, compression="none", use_dictionary=False)
    pq.write_table(table.slice(0, 100), small, compression="none", use_dictionary=False)
    del table
    out_big, out_small = os.path.join(folder, "out.parquet"), os.path.join(folder, "out_small.parquet")
    base = _cli_run(["parse", small, "-o", out_small, "-q"])
    run = _cli_run(["parse", big, "-o", out_big, "-q"])
    return {
        "rows": rows, "tokens": n_tokens, "row_group": row_group,
        "input_bytes": os.path.getsize(big), "output_bytes": os.path.getsize(out_big),
        "output_rows": pq.read_metadata(out_big).num_rows,
        "wall_s": run["wall_s"], "tokens_per_s": n_tokens / run["wall_s"], "peak_rss_bytes": run["peak_rss_bytes"],
        "small_wall_s": base["wall_s"], "small_peak_rss_bytes": base["peak_rss_bytes"],
    }


class _Nothing:
    """A map_batches callable that gives its batch back: Ray's own cost per batch."""

    def __call__(self, table):
        return table


def bench_ray(enc: Any, rows: int, folder: str, cpus: int, batch_rows: int, shards: int = 10) -> Dict[str, Any]:
    """Ray Data: read a Parquet file of ``rows`` completions, parse with CompletionParser on an
    actor pool of 1 and 2 (materialized in the object store, rows counted after), and the same
    with a callable doing nothing (Ray's read, split and transfer: its cost per batch)."""
    import pyarrow.parquet as pq
    import ray

    from harmony_np.arrow import CompletionParser

    path = os.path.join(folder, "ray.parquet")
    table = scenarios.arrow_token_table(h, rows)
    n_tokens = len(table.column("tokens").combine_chunks().values)
    pq.write_table(table, path, row_group_size=batch_rows)
    del table
    out: Dict[str, Any] = {"rows": rows, "tokens": n_tokens, "cpus": cpus, "batch_rows": batch_rows}
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)  # a cluster of its own
    out["init_s"] = time.perf_counter() - t0
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False

        def pipeline(fn, size: int, **kw) -> float:
            ds = ray.data.read_parquet(path).map_batches(
                fn, batch_format="pyarrow", batch_size=batch_rows, compute=ray.data.ActorPoolStrategy(size=size), **kw)
            t = time.perf_counter()
            done = ds.materialize()  # the output stays in the object store (the driver reads none of it)
            wall = time.perf_counter() - t
            counted = done.count()
            del done
            if counted != rows:
                raise RuntimeError(f"Ray gave back {counted} rows of {rows}")
            return wall

        pipeline(CompletionParser, 1, fn_constructor_kwargs={})  # warm: Ray's workers and numba's cache
        for size in (1, 2, 1, 2):  # interleaved, the machine being noisy
            key = f"parse_actors_{size}_s"
            out[key] = min(out.get(key, float("inf")), pipeline(CompletionParser, size, fn_constructor_kwargs={}))
        out["nothing_actors_2_s"] = min(pipeline(_Nothing, 2) for _ in range(2))
        out.update(_ray_files(ray, path, folder, rows, batch_rows, shards))
        out.update(_process_files(folder, batch_rows))
        out["batches"] = -(-rows // batch_rows)
        out["per_batch_overhead_s"] = out["nothing_actors_2_s"] / out["batches"]
        out["speedup_2_over_1"] = out["parse_actors_1_s"] / out["parse_actors_2_s"]
        out["tokens_per_s_actors_2"] = n_tokens / out["parse_actors_2_s"]
    finally:
        ray.shutdown()
    return out


class _TimedFiles:
    """ParquetFiles with each call's start and end (wall clock) and the actor's process in its
    output: when Ray started the work, and how long the work itself took."""

    def __init__(self, **kwargs: Any) -> None:
        from harmony_np.parquet_io import ParquetFiles

        self.files = ParquetFiles(**kwargs)

    def __call__(self, table):
        import pyarrow as pa

        started = time.time()
        out = self.files(table)
        n = out.num_rows
        return out.append_column("started", pa.array([started] * n)).append_column(
            "ended", pa.array([time.time()] * n)).append_column("pid", pa.array([os.getpid()] * n))


def _ray_files(ray: Any, path: str, folder: str, rows: int, batch_rows: int, shards: int = 10) -> Dict[str, float]:
    """The file of ``path`` as ``shards`` files, each parsed by an actor that reads and writes it
    itself (ParquetFiles, the token column left out of the output): 1 and 2 actors."""
    import pyarrow.parquet as pq

    from harmony_np.arrow import CompletionParser

    source, parts = pq.ParquetFile(path), []
    per = -(-source.metadata.num_row_groups // shards)
    for k in range(shards):
        groups = list(range(k * per, min((k + 1) * per, source.metadata.num_row_groups)))
        if groups:
            parts.append(os.path.join(folder, f"part-{k:02d}.parquet"))
            pq.write_table(source.read_row_groups(groups), parts[-1], row_group_size=batch_rows)
    out_dir = os.path.join(folder, "parsed")
    os.makedirs(out_dir, exist_ok=True)
    kwargs = dict(transform=CompletionParser(), output_dir=out_dir, batch_rows=batch_rows, drop_columns=["tokens"])

    spans: Dict[int, List[Tuple[float, float, float]]] = {1: [], 2: []}

    def pipeline(size: int, fn: Any = _TimedFiles, **kw: Any) -> float:
        t, t_clock = time.perf_counter(), time.time()
        done = ray.data.from_items([{"path": p} for p in parts]).map_batches(
            fn, batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=size), **kw).take_all()
        wall = time.perf_counter() - t
        if fn is _TimedFiles:
            if sum(r["rows"] for r in done) != rows:
                raise RuntimeError(f"ParquetFiles wrote {sum(r['rows'] for r in done)} rows of {rows}")
            if len({r["pid"] for r in done}) != size:
                raise RuntimeError(f"{len({r['pid'] for r in done})} actors did the work of a pool of {size}")
            first, last = min(r["started"] for r in done), max(r["ended"] for r in done)
            spans[size].append((first - t_clock, last - first, wall))
        return wall

    pipeline(1, fn_constructor_kwargs=kwargs)  # warm
    spans[1].clear()
    out: Dict[str, float] = {}
    for size in (1, 2, 1, 2):
        key = f"files_actors_{size}_s"
        out[key] = min(out.get(key, float("inf")), pipeline(size, fn_constructor_kwargs=kwargs))
    for size in (1, 2):  # of the run with the least wall time: Ray's start, then the work's span
        before, span, _ = min(spans[size], key=lambda run: run[2])
        out[f"files_start_actors_{size}_s"] = before
        out[f"files_span_actors_{size}_s"] = span
    out["files_span_speedup_2_over_1"] = out["files_span_actors_1_s"] / out["files_span_actors_2_s"]
    for size in (1, 2):  # Ray's own part: the same pipeline with actors that return their input
        out[f"files_nothing_actors_{size}_s"] = min(pipeline(size, _Nothing) for _ in range(2))
    out["files_speedup_2_over_1"] = out["files_actors_1_s"] / out["files_actors_2_s"]
    # an estimate of the work's own ratio: each wall time less Ray's part for that pool
    out["files_speedup_2_over_1_less_ray"] = ((out["files_actors_1_s"] - out["files_nothing_actors_1_s"])
                                              / (out["files_actors_2_s"] - out["files_nothing_actors_2_s"]))
    return out


def _files_in_process(job: Tuple[str, str, int]) -> float:
    from harmony_np.arrow import CompletionParser
    from harmony_np.parquet_io import transform_file

    src, dst, batch_rows = job
    t = time.perf_counter()
    transform_file(_process_parser(CompletionParser), src, dst, batch_rows=batch_rows, drop_columns=["tokens"])
    return time.perf_counter() - t


@functools.lru_cache(maxsize=1)
def _process_parser(cls: Any) -> Any:
    return cls()


def _process_files(folder: str, batch_rows: int) -> Dict[str, float]:
    """The machine's own ceiling for the files case: the part files ``_ray_files`` wrote, each
    through ``transform_file`` in a pool of 1 and of 2 processes (spawned, warmed first), no Ray."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    parts = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.startswith("part-"))
    out_dir = os.path.join(folder, "parsed-processes")
    os.makedirs(out_dir, exist_ok=True)
    jobs = [(p, os.path.join(out_dir, os.path.basename(p)), batch_rows) for p in parts]
    out: Dict[str, float] = {}
    for size in (1, 2, 1, 2):
        with ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_files_in_process, jobs[:size]))  # each process's imports and kernels loaded
            t = time.perf_counter()
            list(pool.map(_files_in_process, jobs))
            key = f"processes_{size}_s"
            out[key] = min(out.get(key, float("inf")), time.perf_counter() - t)
    out["processes_speedup_2_over_1"] = out["processes_1_s"] / out["processes_2_s"]
    return out


def bench_render(enc: Any, rows: int, template_tool: str) -> Dict[str, Any]:
    """ChatRenderer on a table of chat rows, apply_chat_template on the same rows, and the
    template path (timed on 400 rows, scaled), best of 3 (the template path: its second pass)."""
    import pyarrow as pa

    from harmony_np.arrow import ChatRenderer

    chats = scenarios.chat_rows(rows)
    table = pa.table({"messages": chats})
    renderer = ChatRenderer(date=DATE)
    renderer(pa.table({"messages": scenarios.chat_rows(200, seed=-1)}))
    kw = dict(return_dict=True, return_assistant_tokens_mask=True, date=DATE)
    enc.apply_chat_template(scenarios.chat_rows(200, seed=-1), **kw)
    out: Dict[str, Any] = {"rows": rows}
    # The same list of dicts rendered again has its strings' hashes cached from the first call;
    # rows read from a file are new strings each time, as ChatRenderer's are (made from Arrow):
    # both are timed, "fresh" on rows decoded from JSON before each call (the decoding untimed).
    text = json.dumps(chats)

    def fresh_apply() -> float:
        rows_now = json.loads(text)
        return _seconds(lambda: enc.apply_chat_template(rows_now, **kw))

    for _ in range(2):  # interleaved
        out["chat_renderer_s"] = min(out.get("chat_renderer_s", float("inf")), min(_seconds(lambda: renderer(table)) for _ in range(3)))
        out["apply_chat_template_s"] = min(out.get("apply_chat_template_s", float("inf")),
                                           min(_seconds(lambda: enc.apply_chat_template(chats, **kw)) for _ in range(3)))
        out["apply_chat_template_fresh_s"] = min(out.get("apply_chat_template_fresh_s", float("inf")), min(fresh_apply() for _ in range(3)))
    tool = load_template_tool(template_tool)
    if tool is not None:
        k = min(rows, 400)
        tokenizer = enc.vocab.bpe  # the template path tokenizes with tiktoken, whatever harmony_np's backend
        for _ in range(2):
            per_row = _seconds(lambda: [tool.render(tokenizer, m) for m in chats[:k]]) / k
        out["template_path_s"] = per_row * rows
        out["chat_renderer_vs_template"] = out["template_path_s"] / out["chat_renderer_s"]
        out["apply_chat_template_vs_template"] = out["template_path_s"] / out["apply_chat_template_s"]
        out["apply_chat_template_fresh_vs_template"] = out["template_path_s"] / out["apply_chat_template_fresh_s"]
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["memory", "cli", "ray", "render"], action="append", help="run only these cases (repeatable)")
    ap.add_argument("--rows", type=int, default=100_000, help="completions in the in-memory case")
    ap.add_argument("--cli-rows", type=int, default=300_000, help="completions in the Parquet file of the CLI case")
    ap.add_argument("--cli-row-group", type=int, default=4096, help="rows per row group of the CLI case's input")
    ap.add_argument("--cli-max-words", type=int, default=700, help="longest analysis of the CLI case's completions, in words (700: ~470 tokens on average)")
    ap.add_argument("--ray-rows", type=int, default=1_000_000, help="completions in the Ray Data case")
    ap.add_argument("--ray-cpus", type=int, default=4, help="ray.init's logical CPUs (actors and read tasks both hold them)")
    ap.add_argument("--ray-batch", type=int, default=20_000, help="rows per map_batches batch")
    ap.add_argument("--ray-shards", type=int, default=10, help="files the Ray case's rows are split into for ParquetFiles")
    ap.add_argument("--chat-rows", type=int, default=4000, help="chat rows in the render case")
    ap.add_argument("--template-tool", default=os.path.join(_HERE, "..", "..", "shared", "tools", "hf_template.py"))
    ap.add_argument("--folder", default=None, help="where the Parquet files go (default: a temporary folder, removed after)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    a = ap.parse_args(argv)
    only = set(a.only or ["memory", "cli", "ray", "render"])
    enc = scenarios.gpt_oss_encoding(h)
    report: Dict[str, Any] = {"harmony_np": h.__file__, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(dir=a.folder) as folder:
        if "memory" in only:
            report["memory"] = bench_in_memory(enc, a.rows)
        if "render" in only:
            report["render"] = bench_render(enc, a.chat_rows, a.template_tool)
        if "cli" in only:
            report["cli"] = bench_cli(enc, a.cli_rows, folder, a.cli_row_group, a.cli_max_words)
        if "ray" in only:
            report["ray"] = bench_ray(enc, a.ray_rows, folder, a.ray_cpus, a.ray_batch, a.ray_shards)
    if a.json:
        print(json.dumps(report, indent=1))
        return 0
    for case, figures in report.items():
        if isinstance(figures, dict):
            print(f"[{case}]")
            for k, v in figures.items():
                print(f"  {k:34} {v:,.4g}" if isinstance(v, float) else f"  {k:34} {v:,}" if isinstance(v, int) else f"  {k:34} {v}")
        else:
            print(f"{case}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
