"""asv benchmarks of harmony_np: the seed's scenarios warm and cold, batches, memory, start-up.

Warm: the same input every call (a cache of encoded text may answer). Cold: each call takes the
next of ``number`` inputs built in ``setup`` with a tag no earlier call has seen, so no cache can
answer.
"""

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import harmony_np as h


def _load_scenarios():
    """``benchmarks/scenarios.py`` of this repository, loaded from its file.

    asv imports this suite without putting the repository on ``sys.path`` (so that the
    ``harmony_np`` imported is the one asv installed, not the checkout's), so the scenarios are
    found beside this folder and loaded under a name of their own, touching no ``sys.path``.
    """
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "scenarios.py"
    name = "_harmony_np_benchmark_scenarios"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the benchmark scenarios from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


scenarios = _load_scenarios()

_ENC = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
_A = h.Role.ASSISTANT
_DROP = h.RenderConversationConfig(auto_drop_analysis=True)
_KEEP = h.RenderConversationConfig(auto_drop_analysis=False)
_TAGS = itertools.count()


def _fresh(builder, n):
    return [builder(f" #{next(_TAGS)}") for _ in range(n)]


def _chunked(tokens, size):
    p = h.StreamableParser(_ENC, None)
    for i in range(0, len(tokens), size):
        p.process_tokens(tokens[i : i + size])
    return p


def _stream(tokens):
    p = h.StreamableParser(_ENC, None)
    for t in tokens:
        p.process(t)
    return p


class ToolCall:
    """The tool-call conversation and completion (small inputs: per-call overhead)."""

    number = 200
    repeat = (3, 10, 20.0)
    warmup_time = 0.0

    def setup(self):
        self.conv = scenarios.tool_conversation(h)
        self.tokens = scenarios.tool_call_tokens(_ENC)
        self.fresh_convs = iter(_fresh(lambda t: scenarios.tool_conversation(h, t), self.number + 1))
        self.fresh_tokens = iter(_fresh(lambda t: scenarios.tool_call_tokens(_ENC, t), self.number + 1))
        # first calls (JIT cache loads, table builds) are not what these measure
        _ENC.render_conversation_for_completion(scenarios.tool_conversation(h, " warm-up"), _A, _DROP)
        _ENC.parse_messages_from_completion_tokens(scenarios.tool_call_tokens(_ENC, " warm-up"), None)
        _stream(self.tokens)

    def time_render_tool_call_warm(self):
        _ENC.render_conversation_for_completion(self.conv, _A, _DROP)

    def time_render_tool_call_cold(self):
        _ENC.render_conversation_for_completion(next(self.fresh_convs), _A, _DROP)

    def time_parse_tool_call_warm(self):
        _ENC.parse_messages_from_completion_tokens(self.tokens, None)

    def time_parse_tool_call_cold(self):
        _ENC.parse_messages_from_completion_tokens(next(self.fresh_tokens), None)

    def time_stream_tool_call_warm(self):
        _stream(self.tokens)

    def time_stream_tool_call_cold(self):
        _stream(next(self.fresh_tokens))


class LargeRender:
    """The large conversation (16 blocks of 16 KB): bound by BPE, on both cores."""

    number = 3
    repeat = (2, 5, 30.0)
    warmup_time = 0.0

    def setup(self):
        self.conv = scenarios.large_conversation(h)
        _ENC.render_conversation_for_completion(self.conv, _A, _KEEP)
        self.fresh = iter(_fresh(lambda t: scenarios.large_conversation(h, t), 2 * self.number + 2))

    def time_render_large_autodrop_warm(self):
        _ENC.render_conversation_for_completion(self.conv, _A, _DROP)

    def time_render_large_keep_warm(self):
        _ENC.render_conversation_for_completion(self.conv, _A, _KEEP)

    def time_render_large_autodrop_cold(self):
        _ENC.render_conversation_for_completion(next(self.fresh), _A, _DROP)

    def time_render_large_keep_cold(self):
        _ENC.render_conversation_for_completion(next(self.fresh), _A, _KEEP)


class LargeRenderLoadedBackend:
    """The large conversation cold, after a batch has loaded the BPE backend (the accelerated
    one where the ``[fast]`` extra is installed and verifies; single calls use it from then on):
    against harmony-go, which has no cache, these are the figures to compare."""

    number = 3
    repeat = (2, 5, 30.0)
    warmup_time = 0.0

    def setup(self):
        getattr(_ENC, "bpe_backend", None)  # loads and verifies the backend (older versions: tiktoken only)
        _ENC.render_conversation_for_completion(scenarios.large_conversation(h, f" #{next(_TAGS)}"), _A, _KEEP)
        self.fresh = iter(_fresh(lambda t: scenarios.large_conversation(h, t), 2 * self.number + 2))

    def time_render_large_autodrop_cold(self):
        _ENC.render_conversation_for_completion(next(self.fresh), _A, _DROP)

    def time_render_large_keep_cold(self):
        _ENC.render_conversation_for_completion(next(self.fresh), _A, _KEEP)


class LargeCompletion:
    """The large completion (1,288 tokens): parse at once, per token, in chunks."""

    number = 20
    repeat = (3, 10, 20.0)
    warmup_time = 0.0

    def setup(self):
        self.tokens = scenarios.large_completion_tokens(h, _ENC)
        self.fresh = iter(_fresh(lambda t: scenarios.large_completion_tokens(h, _ENC, t), 3 * self.number + 3))
        warm = scenarios.large_completion_tokens(h, _ENC, " warm-up")
        _ENC.parse_messages_from_completion_tokens(warm, None)
        _stream(warm)
        _chunked(warm, 16)
        _chunked(warm, 256)  # loads the bulk path's kernels

    def time_parse_large_completion_warm(self):
        _ENC.parse_messages_from_completion_tokens(self.tokens, None)

    def time_parse_large_completion_cold(self):
        _ENC.parse_messages_from_completion_tokens(next(self.fresh), None)

    def time_stream_large_completion_warm(self):
        _stream(self.tokens)

    def time_stream_large_completion_cold(self):
        _stream(next(self.fresh))

    def time_stream_large_chunked16(self):
        _chunked(next(self.fresh), 16)

    def time_stream_large_chunked256(self):
        _chunked(next(self.fresh), 256)


class Batch:
    """Batch APIs over 10,000 conversations / completions."""

    number = 1
    repeat = (2, 3, 60.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self):
        self.convs = scenarios.batch_inputs(h, 10_000, seed=next(_TAGS))
        self.completions = scenarios.completions(h, 10_000)
        self.flat, self.offsets = scenarios.flat_with_offsets(self.completions)
        # first calls load the kernels from numba's cache and give the encoding threads their
        # copies of the BPE: not what is measured
        _ENC.render_batch(scenarios.batch_inputs(h, 2_000, seed=next(_TAGS)))
        _ENC.render_batch(self.convs[:2], mode="training")
        _ENC.parse_batch(self.completions[:2]).to_messages()

    def time_render_batch_10k_shared_prompt(self):
        _ENC.render_batch(self.convs)

    def time_render_batch_10k_training_loss_mask(self):
        _ENC.render_batch(self.convs, mode="training")

    def time_parse_loop_10k(self):
        for c in self.completions:
            _ENC.parse_messages_from_completion_tokens(c, None)

    def time_parse_batch_10k_to_messages(self):
        _ENC.parse_batch(self.completions).to_messages()

    def time_parse_batch_10k_columnar_flat(self):
        _ENC.parse_batch(self.flat, offsets=self.offsets)

    def track_parse_batch_columnar_tokens_per_second(self):
        import time

        t0 = time.perf_counter()
        _ENC.parse_batch(self.flat, offsets=self.offsets)
        return len(self.flat) / (time.perf_counter() - t0)

    track_parse_batch_columnar_tokens_per_second.unit = "tokens/s"

    def track_render_batch_tokens_per_second(self):
        import time

        t0 = time.perf_counter()
        rb = _ENC.render_batch(self.convs)
        return len(rb.tokens) / (time.perf_counter() - t0)

    track_render_batch_tokens_per_second.unit = "tokens/s"


class JsonRowsBatch:
    """render_batch of 10,000 rows read from JSON: every row its own ``Conversation.from_json``,
    so its system and developer messages (four function tools with nested schemas) are equal
    to every other row's but distinct objects, found by value."""

    number = 1
    repeat = (2, 3, 60.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self):
        self.rows = scenarios.json_row_batch_inputs(h, 10_000, seed=next(_TAGS))
        # the assembly kernel loads from numba's cache and the threads get their BPE copies
        _ENC.render_batch(scenarios.json_row_batch_inputs(h, 2_000, seed=next(_TAGS)))

    def time_render_batch_10k_json_rows(self):
        _ENC.render_batch(self.rows)


class ChatTemplate:
    """apply_chat_template of 4,000 chat rows (the messages convention, thinking on assistant
    turns) to ids and assistant masks, from the rows and from JSON Lines text."""

    number = 1
    repeat = (3, 10, 60.0)
    warmup_time = 0.0

    def setup(self):
        if not hasattr(_ENC, "apply_chat_template"):
            raise NotImplementedError("no apply_chat_template in this version")
        self.rows = scenarios.chat_rows(4000)
        self.lines = [json.dumps({"messages": m}) for m in self.rows]
        _ENC.apply_chat_template(scenarios.chat_rows(200, seed=-1), return_dict=True, return_assistant_tokens_mask=True)

    def time_apply_chat_template_4k(self):
        _ENC.apply_chat_template(self.rows, return_dict=True, return_assistant_tokens_mask=True)

    def time_apply_chat_template_4k_from_jsonl(self):
        _ENC.apply_chat_template([json.loads(x)["messages"] for x in self.lines], return_dict=True, return_assistant_tokens_mask=True)


class BpeBackends:
    """The batch encode of fresh text through the BPE seam, by backend: ``auto`` is the
    accelerated one where the ``[fast]`` extra is installed and verifies (tiktoken elsewhere),
    ``tiktoken`` the reference; 20,000 rows of about 250 tokens, diverse (prose, code, JSON, six
    scripts, whitespace runs) and repetitive (a few English words)."""

    params = ["auto", "tiktoken"]
    param_names = ["backend"]
    number = 1
    repeat = (3, 10, 60.0)
    warmup_time = 0.0

    def setup(self, backend):
        try:
            from harmony_np.bpe import OrdinaryBPE
        except ImportError:
            raise NotImplementedError("no BPE seam in this version")
        self.seam = OrdinaryBPE(_ENC.vocab, backend)
        self.seam.encode_flat(scenarios.diverse_texts(500, seed=-1))  # loads and verifies the backend
        self.diverse = scenarios.diverse_texts(20_000, seed=next(_TAGS))
        self.repetitive = scenarios.repetitive_texts(20_000, seed=next(_TAGS))

    def time_encode_flat_diverse_20k(self, backend):
        self.seam.encode_flat(self.diverse)

    def time_encode_flat_repetitive_20k(self, backend):
        self.seam.encode_flat(self.repetitive)


class Memory:
    """Peak memory of loading and of batch work (asv reports the benchmark process's peak RSS,
    so the batch figures include building their 10,000 inputs)."""

    def peakmem_load_encoding(self):
        h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS).encode("load the BPE too")

    def peakmem_render_batch_10k(self):
        _ENC.render_batch(scenarios.batch_inputs(h, 10_000))

    def peakmem_parse_batch_10k_to_messages(self):
        _ENC.parse_batch(scenarios.completions(h, 10_000)).to_messages()


class Startup:
    """A fresh process: import, load the encoding, render one conversation, parse one completion."""

    number = 1
    repeat = (3, 5, 60.0)
    warmup_time = 0.0

    def time_import_load_render_parse(self):
        code = (
            "import harmony_np as h\n"
            "e = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)\n"
            "c = h.Conversation.from_messages([h.Message.from_role_and_content(h.Role.USER, 'hi')])\n"
            "e.render_conversation_for_completion(c, h.Role.ASSISTANT)\n"
            "e.parse_messages_from_completion_tokens(e.encode('<|channel|>final<|message|>hi<|return|>', allowed_special='all'), h.Role.ASSISTANT)\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)

    def time_import(self):
        subprocess.run([sys.executable, "-c", "import harmony_np"], check=True)


class Arrow:
    """Arrow tables in memory (issue 13): 100,000 completions (~30 M tokens, large_list<uint32>)
    parsed to a messages column; the MessageTable of them to a pa.Table; a RaggedTokens to a
    large_list array (buffers shared); 4,000 chat rows rendered to input_ids and assistant_masks."""

    number = 1
    repeat = (2, 3, 120.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self):
        try:
            import pyarrow as pa
            from harmony_np import arrow
        except ImportError:
            raise NotImplementedError("no pyarrow or no harmony_np.arrow in this version")
        self.arrow = arrow
        self.table = scenarios.arrow_token_table(h, 100_000)
        self.column = self.table.column("tokens")
        self.n_tokens = len(self.column.combine_chunks().values)
        self.messages = _ENC.parse_batch(self.column)
        from harmony_np.ragged import RaggedTokens

        self.ragged = RaggedTokens.from_arrow(self.column.combine_chunks())
        self.chats = pa.table({"messages": scenarios.chat_rows(4000)})
        # kernels from numba's cache, the encoding threads' BPE copies: not what is measured
        arrow.parse_table(_ENC, self.table.slice(0, 100))
        arrow.render_table(_ENC, pa.table({"messages": scenarios.chat_rows(200, seed=-1)}), date="2025-08-05")

    def time_parse_table_100k(self):
        self.arrow.parse_table(_ENC, self.table)

    def time_message_table_to_arrow_100k(self):
        self.messages.to_arrow()

    def time_ragged_to_arrow_100k(self):
        self.ragged.to_arrow()

    def time_render_table_4k_chat_rows(self):
        self.arrow.render_table(_ENC, self.chats, date="2025-08-05")

    def track_parse_table_tokens_per_second(self):
        import time

        t0 = time.perf_counter()
        self.arrow.parse_table(_ENC, self.table)
        return self.n_tokens / (time.perf_counter() - t0)

    track_parse_table_tokens_per_second.unit = "tokens/s"
