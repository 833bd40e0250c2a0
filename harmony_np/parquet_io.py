"""Parquet in, Parquet out, one batch of rows at a time: the streaming layer under the CLI.

A :class:`ParquetSource` reads a file's rows in batches (never the whole file), a
:func:`transform_rows` call runs a table transform (``pa.Table -> pa.Table``, such as
:class:`harmony_np.arrow.CompletionParser`) on one batch with every row that makes it raise set
apart as a bad row, and a :class:`ParquetOutput` writes each result as a row group to a binary
file object. Memory is bounded by the batch, not by the file. :func:`transform_file` puts the
three together for one file, and :class:`ParquetFiles` runs it on each file a table of paths
names: a Ray Data or ``datasets`` callable where the workers read and write the files themselves.

``pyarrow`` is imported inside functions only: importing this module does not load it.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Type

import numpy as np

from .arrow_layout import primitive_array, string_array
from .errors import DATA_ERRORS

BATCH_ROWS = 4096  # rows read, transformed and written as one output row group
ERROR_COLUMN = "error"
ERROR_TYPE_COLUMN = "error_type"
UNKNOWN_KIND = "error"  # the kind of an error the transform reported without an error_type

INSTALL_HINT = "pip install 'harmony-np[arrow]'"

Transform = Callable[..., object]  # pa.Table -> pa.Table


class PyArrowMissing(ImportError):
    """pyarrow is not installed; the text says how to install it."""


def pyarrow_modules():
    """``(pyarrow, pyarrow.parquet, pyarrow.compute)``, or :class:`PyArrowMissing` naming the
    extra to install."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise PyArrowMissing(f"Parquet needs pyarrow ({exc}): {INSTALL_HINT}") from None
    return pa, pq, pc


def is_parquet_path(path: Optional[str]) -> bool:
    """Whether ``path`` names a Parquet file (by its extension, as the CLI chooses formats)."""
    return path is not None and path.lower().endswith(".parquet")


class BadRow(NamedTuple):
    """A row with an error: its index in the file, the error's type name and text, and whether
    the transform raised on it (else the transform put the error in its ``error`` column)."""

    row: int
    kind: str
    text: str
    raised: bool


class ParquetSource:
    """A Parquet file read in batches of rows. ``name``, ``stat``, ``done`` (rows read so far)
    and :meth:`total` (rows in the file, from its metadata) are what the CLI's output and
    progress bar need of an input."""

    def __init__(self, path: str) -> None:
        _, pq, _ = pyarrow_modules()
        import pyarrow as pa

        self.path = path
        self.name = path
        self.done = 0
        self.file = open(path, "rb")
        try:
            self.stat = os.fstat(self.file.fileno())
            # no pre-buffering: it keeps the raw bytes of every column chunk read so far (the whole
            # file, by the end); and a buffered stream of 1 MB, where the default reads a column
            # chunk whole (a row group of 50,000 rows: 150 MB more at the peak)
            self.parquet = pq.ParquetFile(self.file, pre_buffer=False, buffer_size=1 << 20)
        except (pa.ArrowException, OSError) as exc:
            self.file.close()
            raise ValueError(f"{path}: not a readable Parquet file: {exc}") from None
        except BaseException:
            self.file.close()
            raise
        self.schema = self.parquet.schema_arrow

    def __enter__(self) -> "ParquetSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.parquet.close()
        self.file.close()

    def total(self) -> int:
        """Rows in the file, from its footer (nothing is read for it)."""
        return self.parquet.metadata.num_rows

    def require_columns(self, *names: str) -> None:
        """``ValueError`` naming the first of ``names`` the file has no column of, and the
        columns it has."""
        have = self.schema.names
        for name in names:
            if name not in have:
                raise ValueError(f"{self.path}: no column {name!r} (columns: {', '.join(have) or 'none'}); pick one with --column")

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[Tuple[int, object]]:
        """``(index of the first row, pa.Table)`` of each batch of at most ``batch_rows`` rows,
        in order; ``done`` counts the rows handed out. Rows are read one batch at a time from the
        file (a row group larger than a batch is read in parts), so memory stays bounded."""
        import pyarrow as pa

        first = 0
        for batch in self.parquet.iter_batches(batch_size=batch_rows, use_threads=False):
            table = pa.Table.from_batches([batch])
            self.done = first + table.num_rows
            yield first, table
            first = self.done


def _error_of(exc: BaseException) -> Tuple[str, str]:
    return type(exc).__name__, str(exc)


def _transform_isolating(transform: Transform, table, data_errors: Tuple[Type[BaseException], ...]) -> list:
    """``[(start, stop, output table or (kind, text))]`` covering ``table``'s rows in order: the
    transform of whole runs of rows where it succeeds; a row it raises on alone, by itself. A
    failing run is halved until the failure is one row, so one bad row among n costs about
    2·log2(n) calls, not n."""
    pending = [(0, table.num_rows)]
    done: list = []
    while pending:
        start, stop = pending.pop()
        try:
            done.append((start, stop, transform(table.slice(start, stop - start))))
        except data_errors as exc:
            if stop - start == 1:
                done.append((start, stop, _error_of(exc)))
            else:
                mid = (start + stop) // 2
                pending += [(mid, stop), (start, mid)]  # the first half is taken first
    done.sort(key=lambda part: part[0])
    return done


def _null_row_table(pa, schema, source_row, error: Tuple[str, str]):
    """One output row for a row the transform failed on: the input's values in the columns it
    shares with the output (same name and type), nulls elsewhere, and the error."""
    columns = []
    for field in schema:
        if field.name == ERROR_COLUMN:
            columns.append(string_array([error[1]]).cast(field.type))
        elif field.name == ERROR_TYPE_COLUMN:
            columns.append(string_array([error[0]]).cast(field.type))
        elif field.name in source_row.column_names and source_row.schema.field(field.name).type == field.type:
            columns.append(source_row.column(field.name))
        else:
            columns.append(pa.nulls(1, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _with_error_columns(pa, table):
    """``table`` with nullable ``error`` and ``error_type`` string columns, added (all null)
    where the transform did not add them."""
    for name in (ERROR_COLUMN, ERROR_TYPE_COLUMN):
        if name not in table.column_names:
            table = table.append_column(pa.field(name, pa.string()), pa.nulls(table.num_rows, pa.string()))
    return table


def output_schema(transform: Transform, template):
    """The schema of ``transform``'s output (with the error columns) for inputs shaped like
    ``template`` (a table): the transform of its first zero rows."""
    pa, _, _ = pyarrow_modules()
    return _with_error_columns(pa, transform(template.slice(0, 0))).schema


def transform_rows(
    transform: Transform,
    table,
    first_row: int,
    data_errors: Tuple[Type[BaseException], ...],
    schema=None,
) -> Tuple[object, List[BadRow]]:
    """``(output, bad rows)`` of ``transform`` on one batch ``table`` whose first row is row
    ``first_row`` of the file. The output has one row per input row, in order, with ``error``
    and ``error_type`` columns: a row the transform raised one of ``data_errors`` on is there
    with its input values, nulls in the transform's columns and the error; a row the transform
    itself gave an ``error`` is reported as it is. ``schema`` (when known from an earlier batch)
    is the one every batch's output is cast to, so that all row groups of a file agree."""
    pa, _, pc = pyarrow_modules()
    parts = _transform_isolating(transform, table, data_errors)
    good = [_with_error_columns(pa, out) for _, _, out in parts if not isinstance(out, tuple)]
    if schema is None:
        schema = good[0].schema if good else output_schema(transform, table)
    pieces, bad = [], []
    for (start, stop, out) in parts:
        if isinstance(out, tuple):
            bad.append(BadRow(first_row + start, *out, True))
            pieces.append(_null_row_table(pa, schema, table.slice(start, 1), out))
            continue
        out = _with_error_columns(pa, out)
        if out.num_rows != stop - start:
            raise RuntimeError(f"the transform returned {out.num_rows} rows for {stop - start} (rows {first_row + start}-{first_row + stop - 1})")
        if out.schema != schema:
            out = out.select(schema.names).cast(schema)
        errors = out.column(ERROR_COLUMN)
        if errors.null_count < len(errors):
            kinds = out.column(ERROR_TYPE_COLUMN).to_pylist()
            for i in pc.indices_nonzero(pc.is_valid(errors)).to_pylist():
                bad.append(BadRow(first_row + start + i, kinds[i] or UNKNOWN_KIND, errors[i].as_py(), False))
        pieces.append(out)
    bad.sort()
    return (pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces)), bad


def transformed_batches(
    transform: Transform,
    source: "ParquetSource",
    batch_rows: int,
    data_errors: Tuple[Type[BaseException], ...],
) -> Iterator[Tuple[int, object, List[BadRow]]]:
    """``(first row, output, bad rows)`` of each batch of ``source`` through
    :func:`transform_rows`, in order, every output cast to the first one's schema (so that the
    row groups of one file agree)."""
    schema = None
    for first, table in source.batches(batch_rows):
        result, bad = transform_rows(transform, table, first, data_errors, schema)
        schema = result.schema
        yield first, result, bad


class ParquetOutput:
    """A Parquet file written to a binary file object, a row group per :meth:`write`. The file is
    valid once :meth:`close` has written its footer: after any number of writes, none included."""

    def __init__(self, file, schema=None) -> None:
        self.file = file
        self.schema = schema
        self.writer = None
        self.rows = 0

    def write(self, table) -> None:
        """Append ``table`` as one row group (the first table fixes the file's schema)."""
        _, pq, _ = pyarrow_modules()
        if self.writer is None:
            self.schema = self.schema or table.schema
            self.writer = pq.ParquetWriter(self.file, self.schema)
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    def close(self) -> None:
        """Write the footer (an empty file with the schema if nothing was written, or when no
        schema is known, nothing at all) and flush."""
        _, pq, _ = pyarrow_modules()
        if self.writer is None and self.schema is not None:
            self.writer = pq.ParquetWriter(self.file, self.schema)
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.file.flush()


def new_file_mode() -> int:
    """The mode ``open`` would give a new file here: 0666 less the process's umask."""
    umask = os.umask(0)  # read by setting it; set back at once
    os.umask(umask)
    return 0o666 & ~umask


def transform_file(
    transform: Transform,
    src: str,
    dst: str,
    *,
    batch_rows: int = BATCH_ROWS,
    drop_columns: Sequence[str] = (),
    data_errors: Tuple[Type[BaseException], ...] = DATA_ERRORS,
) -> Tuple[int, List[BadRow]]:
    """``(rows written, bad rows)``: the Parquet file ``src`` through ``transform`` into the
    Parquet file ``dst``, a batch of ``batch_rows`` rows at a time (each one row group), every
    bad row in its place with its ``error`` and ``error_type``, the input columns
    ``drop_columns`` left out of the output. ``dst`` is written beside itself under a temporary
    name and renamed into place when complete: an error leaves no partial file."""
    folder = os.path.dirname(os.path.abspath(dst))
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dst)}.", suffix=".part")
    bad: List[BadRow] = []
    try:
        with os.fdopen(fd, "wb") as file, ParquetSource(src) as source:
            os.fchmod(file.fileno(), new_file_mode())  # mkstemp's 0600 is for secrets, not outputs
            missing = [name for name in drop_columns if name not in source.schema.names]
            if missing:
                raise ValueError(f"{src}: no column {missing[0]!r} to drop (columns: {', '.join(source.schema.names)})")
            out = ParquetOutput(file)
            try:
                for _, result, rows_bad in transformed_batches(transform, source, batch_rows, data_errors):
                    out.write(result.drop_columns(list(drop_columns)) if drop_columns else result)
                    bad += rows_bad
                if out.schema is None:  # no rows: the columns of a transform of none
                    out.schema = _dropped(output_schema(transform, source.schema.empty_table()), drop_columns)
            finally:
                out.close()  # the writer closed while its file is open (the file is removed on an error)
            rows = out.rows
        os.replace(temp, dst)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return rows, bad


def _dropped(schema, names: Sequence[str]):
    for name in names:
        schema = schema.remove(schema.get_field_index(name))
    return schema


class ParquetFiles:
    """``ParquetFiles(transform, output_dir)(table)``: each Parquet file named in the table's
    ``path_column`` through :func:`transform_file` into ``output_dir`` (same file name), and one
    row per file back: ``path``, ``output``, ``rows``, ``bad_rows`` and ``first_error`` (null
    when none). ``transform`` is a picklable table callable such as
    :class:`harmony_np.arrow.CompletionParser`, so this is one too: on Ray Data,
    ``ray.data.from_items([{"path": p} for p in paths]).map_batches(ParquetFiles,
    fn_constructor_kwargs=dict(transform=CompletionParser(), output_dir=...), batch_size=1,
    batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=N))`` has each actor read,
    parse and write its files itself, where ``read_parquet`` moves every token through Ray's
    object store. Output file names must differ: two inputs of one name are refused."""

    def __init__(self, transform: Transform, output_dir: str, *, path_column: str = "path", batch_rows: int = BATCH_ROWS,
                 drop_columns: Sequence[str] = ()) -> None:
        if not callable(transform):
            raise TypeError(f"transform: expected a table callable (such as CompletionParser()), got {type(transform).__name__}")
        if not isinstance(batch_rows, int) or batch_rows < 1:
            raise ValueError(f"batch_rows: expected a positive int, got {batch_rows!r}")
        self.transform = transform
        self.output_dir = os.fspath(output_dir)
        self.path_column = path_column
        self.batch_rows = batch_rows
        self.drop_columns = tuple(drop_columns)

    def __call__(self, table: Any) -> Any:
        pa, _, _ = pyarrow_modules()
        if self.path_column not in table.column_names:
            raise KeyError(f"the table has no column {self.path_column!r} (columns: {table.column_names})")
        paths = table.column(self.path_column).to_pylist()
        names = [os.path.basename(p) for p in paths if p is not None]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"input files of the same name would write one output: {twice}")
        outputs, rows, bad_rows, first_errors = [], [], [], []
        for k, path in enumerate(paths):
            if path is None:
                raise ValueError(f"{self.path_column}[{k}]: a null path")
            dst = os.path.join(self.output_dir, os.path.basename(path))
            if os.path.abspath(dst) == os.path.abspath(path):
                raise ValueError(f"{path}: the output would replace its input (choose another output_dir)")
            n, bad = transform_file(self.transform, path, dst, batch_rows=self.batch_rows, drop_columns=self.drop_columns)
            outputs.append(dst)
            rows.append(n)
            bad_rows.append(len(bad))
            first_errors.append(f"row {bad[0].row}: {bad[0].kind}: {bad[0].text}" if bad else None)
        return pa.table({"path": string_array(paths), "output": string_array(outputs), "rows": primitive_array(np.array(rows, dtype=np.int64)),
                         "bad_rows": primitive_array(np.array(bad_rows, dtype=np.int64)), "first_error": string_array(first_errors)})

    def __repr__(self) -> str:
        return f"ParquetFiles({self.transform!r}, {self.output_dir!r})"
