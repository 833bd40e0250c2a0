"""Tables in, tables out: render, parse and decode columns of a ``pyarrow.Table``, and the same
work as picklable callables for Hugging Face ``datasets`` and Ray Data.

* :func:`render_table`: chat rows (a ``messages`` column, optional ``tools``) to ``input_ids``
  (``large_list<uint32>``) and ``assistant_masks`` (``large_list<uint8>``), TRL's column names;
* :func:`parse_table`: completions (a ``tokens`` column of integer lists) to a ``messages``
  column (``list<struct<role, name, channel, recipient, content_type, content>>``) or the chat
  columns (``content``, ``reasoning_content``, ``tool_calls``), and ``error``;
* :func:`decode_table`: token rows to their text (``encoding.decode``);
* :class:`ChatRenderer`, :class:`CompletionParser`, :class:`TokenDecoder`: the three as
  ``__call__(pa.Table) -> pa.Table``, loading the encoding once per process.

pyarrow is imported inside the functions: importing this module costs nothing more than
importing harmony_np (``pip install 'harmony-np[arrow]'`` brings pyarrow).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .arrow_layout import list_column, missing_row_error, primitive_array, primitive_values, string_array, text_array, valid_mask, validity_bitmap
from .errors import DATA_ERRORS, with_index
from .model import HarmonyEncodingName, Role
from .tuning import SKELETON_MIN_ROWS
from .vocab import N_VOCAB

__all__ = ["render_table", "parse_table", "decode_table", "ChatRenderer", "CompletionParser", "TokenDecoder"]

_TEMPLATES = ("hf", "harmony")


# -- shared pieces ------------------------------------------------------------------------------


def _as_table(table: Any) -> Any:
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected a pyarrow.Table (or RecordBatch), got {type(table).__name__}")
    return table


def _column(table: Any, name: str) -> Any:
    if name not in table.column_names:
        raise KeyError(f"the table has no column {name!r} (columns: {table.column_names})")
    return table.column(name)


def _with_column(table: Any, name: str, values: Any) -> Any:
    """``table`` with column ``name`` set to ``values`` (replaced if there, else appended)."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _errors_arg(errors: str, allowed: Sequence[str]) -> str:
    if errors not in allowed:
        raise ValueError(f"errors must be one of {tuple(allowed)}, got {errors!r}")
    return errors


def _list_rows(values: np.ndarray, offsets: np.ndarray, valid: np.ndarray) -> Any:
    """A ``large_list`` over ``values`` and ``offsets`` (shared, not copied), null where not
    ``valid``."""
    import pyarrow as pa

    value_type = pa.from_numpy_dtype(values.dtype)
    child = pa.Array.from_buffers(value_type, values.shape[0], [None, pa.py_buffer(values)])
    return pa.Array.from_buffers(pa.large_list(value_type), offsets.shape[0] - 1, [validity_bitmap(valid)[0], pa.py_buffer(offsets)], children=[child])


def _text_rows(data: np.ndarray, byte_off: np.ndarray, valid: np.ndarray) -> Any:
    """:func:`text_array`, null where not ``valid``."""
    import pyarrow as pa

    texts = text_array(data, byte_off)
    if valid.all():
        return texts
    return pa.Array.from_buffers(pa.large_string(), len(texts), [validity_bitmap(valid)[0]] + texts.buffers()[1:])


def _with_errors(table: Any, errors: List[Optional[str]], kinds: List[Optional[str]], rows: Optional[np.ndarray] = None) -> Any:
    """``table`` with ``error`` (the text) and ``error_type`` (the exception's type name, as
    ``HarmonyError`` or ``ValueError``) string columns, null where the row is fine; ``rows``, when
    known, the rows with an error, ascending."""
    return _with_column(_with_column(table, "error", string_array(errors, rows=rows)), "error_type", string_array(kinds, rows=rows))


def _kinds(errors: Dict[int, BaseException], n: int) -> List[Optional[str]]:
    """The type name of each row's error in ``errors`` (row -> exception), None elsewhere."""
    kinds: List[Optional[str]] = [None] * n
    for i, exc in errors.items():
        kinds[i] = type(exc).__name__
    return kinds


# -- render -------------------------------------------------------------------------------------


def _without_nulls(value: Any) -> Any:
    """``value`` with every dict entry whose value is None left out, at every depth.

    An Arrow struct column has every key of every row: a message without ``thinking`` comes back
    as ``{"thinking": None}``, which the template reads differently from an absent key (it
    fails on it). JSON's explicit nulls cannot be told apart from these after a round trip
    through Arrow, and are left out as well.
    """
    cls = value.__class__
    # to_pylist gives exact dicts and lists; scalars (most values) are kept without a call
    if cls is dict:
        return {k: (v if v.__class__ in _SCALARS else _without_nulls(v)) for k, v in value.items() if v is not None}
    if cls is list:
        return [v if v.__class__ in _SCALARS else _without_nulls(v) for v in value]
    return value


_SCALARS = frozenset([str, int, float, bool, bytes])


def _message_rows(column: Any) -> Tuple[List[Any], bool]:
    """The rows of a chat-messages column as Python lists of message dicts, and whether their
    null keys are already left out. A ``list<struct>`` column is read a field at a time (each
    field's values made by Arrow in one call, nested fields cleaned as :func:`_without_nulls`
    does), each message built once with its present keys only; any other type through
    ``to_pylist``, left to the caller to clean."""
    import pyarrow as pa

    t = column.type
    if not ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type)):
        return column.to_pylist(), False
    names = [t.value_type.field(i).name for i in range(t.value_type.num_fields)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # Arrow allows it; no dict can hold both
        raise ValueError(f"the messages' struct repeats the field name(s) {', '.join(map(repr, repeated))}: each key must be one field")
    simple = [pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_boolean(f.type)
              or pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in t.value_type]
    dicts_of = _dicts_of(tuple(names))
    rows: List[Any] = []
    for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column]):
        structs = chunk.flatten()  # the messages of the rows in view (null rows hold none)
        children = structs.flatten()  # a field's values, the struct's own nulls applied
        fields = [f.to_pylist() for f in children]
        for k, is_simple in enumerate(simple):
            if not is_simple:
                fields[k] = [v if v is None else _without_nulls(v) for v in fields[k]]
        messages: List[Any] = dicts_of(fields) if fields else [{} for _ in range(len(structs))]
        for name, values in zip(names, children):
            if values.null_count:  # keys of absent values left out, the others in the schema's order
                for i in np.flatnonzero(~valid_mask(values)).tolist():
                    del messages[i][name]
        if structs.null_count:
            for i in np.flatnonzero(~valid_mask(structs)).tolist():
                messages[i] = None
        lengths = np.diff(primitive_values(chunk.offsets)).tolist()
        valid = valid_mask(chunk).tolist() if chunk.null_count else None
        at = 0
        for i, m in enumerate(lengths):
            if valid is not None and not valid[i]:
                rows.append(None)
                continue
            rows.append(messages[at : at + m])
            at += m
    return rows, True


_PLAIN_FIELDS = ("role", "content", "thinking")


def _filled_rows(column: Any, tools: List[Any], skeletons: Any) -> List[Any]:
    """Per row of a chat-messages column, a :class:`harmony_np.chat_render.Filled` of its
    skeleton from ``skeletons`` (a :class:`harmony_np.chat_render.Skeletons`) where the row is of
    plain messages of a shape that enough rows have, and has no tools; else None. The rows'
    shapes and whether they qualify are found a column at a time; no message dict is built for
    them."""
    import pyarrow as pa

    n = len(column)
    out: List[Any] = [None] * n
    t = column.type
    if not ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type)):
        return out
    fields = {f.name: f.type for f in t.value_type}
    if len(fields) != t.value_type.num_fields or "role" not in fields or "content" not in fields:
        return out
    if not all(pa.types.is_string(fields[k]) or pa.types.is_large_string(fields[k]) for k in _PLAIN_FIELDS if k in fields):
        return out
    without_tools = np.fromiter((x is None for x in tools), dtype=bool, count=n)
    if not without_tools.any():
        return out
    # first the shapes of the rows that qualify, in every chunk: a skeleton costs more to make
    # than it saves on a few rows, so only shapes of SKELETON_MIN_ROWS rows get one (tuning.py)
    shapes = []  # per chunk: (first row, values, codes, bounds, rows that qualify, their shape keys)
    counts: Dict[bytes, int] = {}
    base = 0
    for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column]):
        rows = len(chunk)
        structs = chunk.flatten()
        values = dict(zip(fields, structs.flatten()))
        plain = _plain_texts(values["content"]) & _valid(values["role"]) & _valid(structs)
        thinking = values.get("thinking")
        has_thinking = np.zeros(len(structs), dtype=bool) if thinking is None else _valid(thinking)
        if thinking is not None:
            plain &= ~has_thinking | _plain_texts(thinking)
        for name, field in values.items():
            if name not in _PLAIN_FIELDS and field.null_count < len(field):
                plain &= ~_valid(field)
        offsets = primitive_values(chunk.offsets)
        offsets = offsets - offsets[0]
        not_plain = np.zeros(len(structs) + 1, dtype=np.int64)
        np.cumsum(~plain, out=not_plain[1:])
        ok = (not_plain[offsets[1:]] == not_plain[offsets[:-1]]) & (offsets[1:] > offsets[:-1]) & _valid(chunk)
        ok &= without_tools[base : base + rows]
        if ok.any():
            roles = values["role"].dictionary_encode()
            ids = np.array([skeletons.role_id(r) for r in roles.dictionary.to_pylist()] or [0], dtype=np.int64)
            codes = ids[np.where(valid_mask(roles.indices), primitive_values(roles.indices), 0)] * 2 + has_thinking
            bounds = offsets.tolist()
            keys = codes.tobytes()  # a row's shape: its slice of these, 8 bytes a message
            qualified = np.flatnonzero(ok).tolist()
            row_keys = [keys[8 * bounds[i] : 8 * bounds[i + 1]] for i in qualified]
            for key in row_keys:
                counts[key] = counts.get(key, 0) + 1
            shapes.append((base, values, codes, bounds, qualified, row_keys))
        base += rows
    common = {key for key, count in counts.items() if count >= SKELETON_MIN_ROWS}
    if not common:
        return out
    from .chat_render import Filled

    skeleton_of = skeletons.skeleton
    for base, values, codes, bounds, qualified, row_keys in shapes:
        if common.isdisjoint(row_keys):
            continue
        contents = values["content"].to_pylist()
        thinking = values.get("thinking")
        thoughts = thinking.to_pylist() if thinking is not None else [None] * len(contents)
        for i, key in zip(qualified, row_keys):
            if key in common:
                a = bounds[i]
                skeleton = skeleton_of(key, codes, a, bounds[i + 1])
                if skeleton is not None:
                    out[base + i] = Filled(skeleton, contents, thoughts, a)
    return out


def _valid(array: Any) -> np.ndarray:
    """Where ``array`` is not null, as a NumPy bool array."""
    return valid_mask(array)


def _plain_texts(array: Any) -> np.ndarray:
    """Where a string array holds a non-empty text without ``"<|"`` (False where null), read
    from its offsets and bytes (pyarrow's substring match took 3-4 ms for 16,000 texts). A ``<``
    ending one text before a ``|`` starting the next marks the first: a row of it only takes the
    general path."""
    import pyarrow as pa

    n = len(array)
    width = 8 if pa.types.is_large_string(array.type) else 4
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64 if width == 8 else np.int32, count=n + 1, offset=array.offset * width)
    plain = offsets[1:] > offsets[:-1]
    if data_buffer is not None and offsets[-1] > offsets[0]:
        data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
        opens = np.flatnonzero(data[:-1] == 0x3C)  # "<", then is the next byte "|"
        opens = opens[data[opens + 1] == 0x7C] + offsets[0]
        if opens.shape[0]:
            plain[np.searchsorted(offsets, opens, side="right") - 1] = False
    if array.null_count:
        plain &= _valid(array)
    return plain


def _dicts_of(names: Tuple[str, ...]) -> Any:
    """A function of one list of values per name giving ``[{names[0]: a, names[1]: b, ...}]``,
    one dict per position. It is a dict display with the names as constant keys, which Python
    builds about 4x faster than ``dict(zip(names, values))`` (a struct column's messages: 9.3 ->
    2.4 ms for 15,888). The names are written into the source by ``repr``, so any string is safe.
    Kept for the last 32 schemas whose names are short (the cache stays under a few hundred KB)."""
    if sum(len(name) for name in names) <= _CACHED_NAMES_CHARS:
        return _cached_dicts_of(names)
    return _compile_dicts_of(names)


_CACHED_NAMES_CHARS = 2048


def _compile_dicts_of(names: Tuple[str, ...]) -> Any:
    args = ", ".join(f"v{k}" for k in range(len(names)))
    entries = ", ".join(f"{name!r}: v{k}" for k, name in enumerate(names))
    source = f"lambda fields: [{{{entries}}} for ({args},) in zip(*fields)]"
    return eval(source, {"zip": zip})  # noqa: S307 - the source is built above from repr'd names


_cached_dicts_of = functools.lru_cache(maxsize=32)(_compile_dicts_of)


def _date_text(date: Any) -> Optional[str]:
    import datetime

    if date is None or isinstance(date, str):
        return date
    if isinstance(date, (datetime.date, datetime.datetime)):
        return date.strftime("%Y-%m-%d")
    raise TypeError(f"date must be a str, a datetime.date or None, got {type(date).__name__}: {date!r}")


def render_table(
    encoding: Any,
    table: Any,
    *,
    column: str = "messages",
    tools_column: str = "tools",
    template: str = "hf",
    mode: str = "training",
    reasoning_effort: Optional[str] = None,
    model_identity: Optional[str] = None,
    builtin_tools: Optional[List[str]] = None,
    date: Any = None,
    add_generation_prompt: bool = False,
    keep_analysis: bool = False,
    errors: str = "raise",
) -> Any:
    """``table`` with ``input_ids`` (``large_list<uint32>``) and ``assistant_masks``
    (``large_list<uint8>``) appended (replaced, if there): the chat rows of ``column`` (a list of
    message structs per row) rendered, each with the tools of ``tools_column`` (when the table
    has that column; a null row: no tools).

    ``template="hf"``: the gpt-oss chat template, row ``i`` equal to
    ``encoding.apply_chat_template(messages_i, tools=tools_i, return_assistant_tokens_mask=True,
    ...)``, with a generation prompt when ``add_generation_prompt`` or ``mode="completion"``.
    ``template="harmony"``: each row through :func:`harmony_np.chat.from_chat` and
    ``render_batch(mode=mode, loss_mask=True)`` (``keep_analysis``: keep earlier analysis
    messages), as ``harmony-np render --from chat --template harmony`` does.

    Arrow gives every message struct every key of the column, None where a row had none: keys
    whose value is None are left out (at every depth) before rendering, as if absent.

    Rows of plain messages (``role``, ``content`` and maybe ``thinking``, non-empty strings
    without ``"<|"``; no tools) whose shape (roles, which have thinking) at least
    ``SKELETON_MIN_ROWS`` rows of the table share are rendered from one skeleton per shape, read
    from the columns without a dict per message: the same ids (see
    :class:`harmony_np.chat_render.Skeletons`).

    ``errors="raise"``: a row that does not render raises (naming it); ``"collect"``: its
    ``input_ids`` and ``assistant_masks`` are null and ``error`` and ``error_type`` columns (null
    for the rows that rendered) say why.
    """
    table = _as_table(table)
    _errors_arg(errors, ("raise", "collect"))
    if template not in _TEMPLATES:
        raise ValueError(f"template must be one of {_TEMPLATES}, got {template!r}")
    chats = _column(table, column)
    n = len(chats)
    tools = _column(table, tools_column).to_pylist() if tools_column in table.column_names else [None] * n
    prompt = add_generation_prompt or mode == "completion"
    if template == "hf":
        from .chat_render import Skeletons
        from .chat_template import template_date, template_variables

        skeletons = Skeletons(prompt, template_date(date), template_variables(reasoning_effort, model_identity, builtin_tools))
        filled = _filled_rows(chats, tools, skeletons)
    else:
        filled = [None] * n
    if all(f is not None for f in filled):
        messages, cleaned = filled, True
    else:
        messages, cleaned = _message_rows(chats)
    items: List[Any] = [None] * n
    row_errors: List[Optional[str]] = [None] * n

    refused: Dict[int, Exception] = {}

    def refuse(i: int, exc: Exception) -> None:
        refused[i] = exc
        row_errors[i] = str(exc)

    if template == "harmony":
        from .chat import from_chat
        from .model import RenderConversationConfig

        day = _date_text(date)
        config = RenderConversationConfig(auto_drop_analysis=not keep_analysis)

        def render(batch: list) -> Any:
            return encoding.render_batch(batch, mode=mode, next_role=Role.ASSISTANT, config=config, loss_mask=True)
    else:
        from .chat_render import render_rows

        def render(batch: list) -> Any:
            return render_rows(encoding, batch, add_generation_prompt=prompt, reasoning_effort=reasoning_effort,
                               model_identity=model_identity, builtin_tools=builtin_tools, date=date)

    for i, (row, row_tools) in enumerate(zip(messages, tools)):
        if filled[i] is not None:
            items[i] = filled[i]
            continue
        try:
            if row is None:
                raise missing_row_error("a list of chat messages")
            row, row_tools = (row if cleaned else _without_nulls(row)), _without_nulls(row_tools)
            if template == "harmony":
                items[i] = from_chat(row, tools=row_tools, reasoning_effort=reasoning_effort, model_identity=model_identity,
                                     conversation_start_date=day, builtin_tools=builtin_tools or ())
            else:
                items[i] = (row, row_tools)
        except DATA_ERRORS as exc:
            refuse(i, exc)
    good = [i for i in range(n) if row_errors[i] is None]
    rendered = _render_rows(render, [items[i] for i in good], lambda k, exc: refuse(good[k], exc))
    if errors == "raise" and refused:
        first = min(refused)  # the first bad row, whichever step refused it
        raise with_index(refused[first], f"row {first}") from None
    if not isinstance(rendered, list) and len(good) == n:
        # every row rendered in one batch: its buffers are the columns' (no copy)
        ok = np.ones(n, dtype=bool)
        ids, masks, offsets = rendered.tokens, rendered.loss_mask, rendered.offsets
    else:
        ids, masks, offsets, ok = _joined_rows(n, good, rendered)
    out = _with_column(table, "input_ids", _list_rows(ids, offsets, ok))
    out = _with_column(out, "assistant_masks", _list_rows(masks, offsets, ok))
    if errors == "collect":
        out = _with_errors(out, row_errors, _kinds(refused, n))
    return out


def _joined_rows(n: int, good: List[int], rendered: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, masks, offsets, ok)`` of ``n`` table rows, row ``good[k]`` being ``rendered``'s
    ``k``-th (a RaggedTokens, or ``(ids, mask)`` pairs with None for a row that failed); the
    other rows are empty and not ``ok``."""
    if not isinstance(rendered, list):
        rendered = [(rendered[k], rendered.row_mask(k)) for k in range(len(good))]
    ok = np.zeros(n, dtype=bool)
    lengths = np.zeros(n, dtype=np.int64)
    token_parts: List[np.ndarray] = []
    mask_parts: List[np.ndarray] = []
    for i, got in zip(good, rendered):
        if got is None:
            continue
        ids, mask = got
        ok[i] = True
        lengths[i] = ids.shape[0]
        token_parts.append(ids)
        mask_parts.append(mask)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(token_parts) if token_parts else np.zeros(0, np.uint32)
    masks = np.concatenate(mask_parts) if mask_parts else np.zeros(0, np.uint8)
    return ids.astype(np.uint32, copy=False), masks.astype(np.uint8, copy=False), offsets, ok


def _render_rows(render, items: list, refuse) -> Any:
    """The rows of ``items`` (a :class:`RaggedTokens` with their masks) from one ``render``
    call or, when one item fails, ``(ids, mask)`` of each from one call each, to tell which
    (``refuse(k, exc)`` for item ``k``; its entry is None)."""
    try:
        return render(items)  # every item rendered: the rows as they are
    except DATA_ERRORS:
        pass  # told apart below, one call each
    out: List[Optional[tuple]] = []
    for k, item in enumerate(items):
        try:
            one = render([item])
        except DATA_ERRORS as exc:
            refuse(k, _unindexed(exc))
            out.append(None)
            continue
        out.append((one[0], one.row_mask(0)))
    return out


def _unindexed(exc: Exception) -> Exception:
    """``exc`` without the ``conversation 0: `` prefix a batch of one gives its error."""
    text = str(exc)
    if text.startswith("conversation 0: "):
        try:
            return type(exc)(text[len("conversation 0: "):])
        except TypeError:  # an error type whose constructor takes other arguments
            return exc
    return exc


# -- parse --------------------------------------------------------------------------------------


def _messages_column(mt: Any) -> Any:
    """``list<struct<role, name, channel, recipient, content_type, content>>`` per completion,
    from :meth:`MessageTable.to_arrow` and the completion column (no Python object per
    message)."""
    import pyarrow as pa

    flat = mt.to_arrow()
    fields = ["role", "name", "channel", "recipient", "content_type", "content"]
    arrays = []
    for name in fields:
        chunked = flat.column(name)
        # one chunk (as to_arrow builds them): taken as it is; combine_chunks would copy it
        col = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
        arrays.append(col.dictionary_decode() if pa.types.is_dictionary(col.type) else col)
    structs = pa.StructArray.from_arrays(arrays, names=fields)
    counts = np.bincount(mt.completion, minlength=mt.n_completions) if len(mt) else np.zeros(mt.n_completions, np.int64)
    offsets = np.zeros(mt.n_completions + 1, dtype=np.int32 if len(mt) < 2**31 else np.int64)
    np.cumsum(counts, out=offsets[1:])
    make = pa.ListArray if offsets.dtype == np.int32 else pa.LargeListArray
    return make.from_arrays(primitive_array(offsets), structs)


def _chat_types() -> Dict[str, Any]:
    import pyarrow as pa

    call = pa.struct([("id", pa.string()), ("type", pa.string()),
                      ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))])
    return {"content": pa.large_string(), "reasoning_content": pa.large_string(), "tool_calls": pa.list_(call)}


def parse_table(
    encoding: Any,
    table: Any,
    *,
    column: str = "tokens",
    role: Any = None,
    strict: bool = True,
    errors: str = "collect",
    output: str = "messages",
    call_id_prefix: str = "call_",
) -> Any:
    """``table`` with the parse of its completions (``column``: a list/large_list of integers
    per row) appended, aligned with its rows (columns of the same name are replaced).

    ``output="messages"``: a ``messages`` column, ``list<struct<role, name, channel, recipient,
    content_type, content>>``, each row equal to ``parse_batch(...).to_messages()[i]`` (empty
    for a row with an error, unless ``errors="recover"`` read it). ``output="chat"``: the
    assistant chat message of each row (:func:`harmony_np.chat.to_chat`) as ``content``,
    ``reasoning_content`` and ``tool_calls`` (``list<struct<id, type, function: struct<name,
    arguments>>>``), null for a row with an error and no messages. Both add ``error`` and
    ``error_type`` (strings: the error's text and its exception's type name, null where the row
    parsed; a row whose messages are no chat message has its conversion's error). ``role``,
    ``strict`` and ``errors`` (``"collect"``, ``"recover"`` or ``"raise"``) are ``parse_batch``'s. A null row is an error row.
    """
    import pyarrow as pa

    table = _as_table(table)
    _errors_arg(errors, ("raise", "collect", "recover"))
    if output not in ("messages", "chat"):
        raise ValueError(f"output must be 'messages' or 'chat', got {output!r}")
    mt = encoding.parse_batch(_column(table, column), role=role, strict=strict, errors=errors)
    row_errors, kinds = list(mt.errors), list(mt.error_types)
    if output == "messages":
        return _with_errors(_with_column(table, "messages", _messages_column(mt)), row_errors, kinds, mt.error_rows)
    from .chat import to_chat

    chats: List[Optional[dict]] = []
    chat_errors: List[int] = []
    for b, messages in enumerate(mt.to_messages()):
        if not messages and row_errors[b] is not None:
            chats.append(None)
            continue
        try:
            chats.append(to_chat(messages, call_id_prefix=call_id_prefix))
        except (TypeError, ValueError) as exc:
            if errors == "raise":
                raise with_index(exc, f"completion {b}") from exc
            chats.append(None)
            row_errors[b], kinds[b] = str(exc), type(exc).__name__
            chat_errors.append(b)
    out = table
    for name in ("content", "reasoning_content"):
        out = _with_column(out, name, string_array([None if c is None else c[name] for c in chats], large=True))
    out = _with_column(out, "tool_calls", _tool_calls_array([None if c is None else c["tool_calls"] for c in chats]))
    return _with_errors(out, row_errors, kinds, np.union1d(mt.error_rows, np.array(chat_errors, dtype=np.int64)))


def _tool_calls_array(rows: List[Optional[List[dict]]]) -> Any:
    """``tool_calls`` of :func:`_chat_types` for the chat rows' calls (None: a null row), built
    from buffers."""
    import pyarrow as pa

    calls = [call for row in rows if row is not None for call in row]
    function = pa.StructArray.from_arrays([string_array([c["function"]["name"] for c in calls]),
                                           string_array([c["function"]["arguments"] for c in calls])], names=["name", "arguments"])
    struct = pa.StructArray.from_arrays([string_array([c["id"] for c in calls]), string_array([c["type"] for c in calls]), function],
                                        names=["id", "type", "function"])
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([0 if row is None else len(row) for row in rows], out=offsets[1:])
    bitmap, nulls = validity_bitmap(np.array([row is not None for row in rows], dtype=bool))
    type_ = _chat_types()["tool_calls"]
    return pa.Array.from_buffers(type_, len(rows), [bitmap, pa.py_buffer(offsets)], null_count=nulls, children=[struct.cast(type_.value_type)])


# -- decode -------------------------------------------------------------------------------------


def decode_table(encoding: Any, table: Any, *, column: str = "tokens", output_column: str = "text", errors: str = "raise") -> Any:
    """``table`` with ``output_column`` (``large_string``) appended: the text of each token row
    of ``column``, as ``encoding.decode`` gives it (invalid UTF-8 replaced), built from the
    gathered bytes (no Python string per row unless its bytes are not valid UTF-8).

    A row with an id outside the vocabulary, a null row or one holding a null:
    ``errors="raise"`` raises naming the row (``HarmonyError: Invalid token for decoding`` for
    an unknown id, as ``decode``); ``"collect"``: its text is null and ``error`` and ``error_type``
    columns say why.
    """
    from .errors import HarmonyError
    from .lazy import kernels

    table = _as_table(table)
    _errors_arg(errors, ("raise", "collect"))
    col = list_column(_column(table, column), f"column {column!r}")
    values, offsets = col.values, col.offsets
    n = offsets.shape[0] - 1
    bad: Dict[int, Exception] = dict(col.bad)
    unknown = np.flatnonzero(values >= N_VOCAB)
    if unknown.size:
        rows = np.searchsorted(offsets, unknown, "right") - 1
        first_row, first_at = np.unique(rows, return_index=True)
        for r, k in zip(first_row.tolist(), unknown[first_at].tolist()):
            bad.setdefault(r, HarmonyError(f"Invalid token for decoding: {int(values[k])}"))
    row_errors: List[Optional[str]] = [None] * n
    valid = np.ones(n, dtype=bool)
    start, stop = offsets[:-1].copy(), offsets[1:].copy()
    for r in sorted(bad):
        if errors == "raise":
            raise with_index(bad[r], f"row {r}") from None
        row_errors[r] = str(bad[r])
        valid[r] = False
        stop[r] = start[r]  # its ids are not read
    vocab = encoding.vocab
    data, byte_off = kernels().gather_spans(vocab.flat, vocab.offsets, values, start, stop)
    out = _with_column(table, output_column, _text_rows(data, byte_off, valid))
    if errors == "collect":
        out = _with_errors(out, row_errors, _kinds(bad, n))
    return out


# -- callables ----------------------------------------------------------------------------------

_ENCODINGS: Dict[str, Any] = {}


def _encoding(name: str) -> Any:
    """The encoding ``name``, loaded once per process."""
    enc = _ENCODINGS.get(name)
    if enc is None:
        from .encoding import load_harmony_encoding

        enc = _ENCODINGS[name] = load_harmony_encoding(name)
    return enc


class _TableCallable:
    """A table function with its options, as a picklable ``__call__(pa.Table) -> pa.Table``: only
    the options travel (pickled to worker processes or Ray actors); each process loads the
    encoding on its first call."""

    _function: Any = None

    def __init__(self, *, encoding_name: Any = HarmonyEncodingName.HARMONY_GPT_OSS, **options: Any) -> None:
        accepted = list(inspect.signature(type(self)._function).parameters)[2:]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown options {unknown} (accepted: {accepted})")
        if "role" in options and isinstance(options["role"], Role):
            options["role"] = options["role"].value  # a plain string pickles anywhere
        self.encoding_name = str(getattr(encoding_name, "value", encoding_name))
        self.options = options

    def __call__(self, table: Any) -> Any:
        return type(self)._function(_encoding(self.encoding_name), table, **self.options)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


class ChatRenderer(_TableCallable):
    """``ChatRenderer(**options)(table)`` is ``render_table(encoding, table, **options)``
    (``encoding_name``: which encoding, gpt-oss's by default). For
    ``datasets.Dataset.with_format("arrow").map(ChatRenderer(...), batched=True)`` and Ray
    Data's ``map_batches(ChatRenderer, fn_constructor_kwargs={...}, batch_format="pyarrow")``."""

    _function = staticmethod(render_table)


class CompletionParser(_TableCallable):
    """``CompletionParser(**options)(table)`` is ``parse_table(encoding, table, **options)``
    (``role`` as a :class:`Role` or its string value); see :class:`ChatRenderer`."""

    _function = staticmethod(parse_table)


class TokenDecoder(_TableCallable):
    """``TokenDecoder(**options)(table)`` is ``decode_table(encoding, table, **options)``; see
    :class:`ChatRenderer`."""

    _function = staticmethod(decode_table)
