"""Batches larger than memory: Parquet read and written a bounded chunk of rows at a time.

:func:`write_chunks` writes frames that arrive one at a time (a landing file's row batches, a
query's pages) into one Parquet file with the types a single ``pd.concat`` of them would have had,
so a chunked ingest writes the same rows, types and content hash as reading everything at once.
:func:`iter_frames` reads a Parquet file back in row batches with its pandas types.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from include.foundation.storage import atomic_write

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def iter_frames(path: Path, chunk_rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """``path``'s rows, ``chunk_rows`` at a time, with the pandas types they were written with
    (nullable integers, naive timestamps); a file without rows gives one empty frame."""
    import pyarrow.parquet as pq

    # without pre-buffering: with it, the reader keeps every row group it read until it is closed,
    # so memory grows with the file (make bench P7: 1.9 GB held after reading 15M rows)
    pf = pq.ParquetFile(path, pre_buffer=False)
    seen = False
    for batch in pf.iter_batches(batch_size=max(1, chunk_rows), columns=columns, use_pandas_metadata=True):
        seen = True
        yield batch.to_pandas()
    if not seen:
        yield pf.schema_arrow.empty_table().select(columns or pf.schema_arrow.names).to_pandas()


def row_count(path: Path) -> int:
    """Rows of a Parquet file, from its footer (no data read)."""
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def column_names(path: Path) -> list[str]:
    """A Parquet file's columns, from its footer."""
    import pyarrow.parquet as pq

    return pq.read_schema(path).names


class ChunkStats:
    """What pass one learns of each chunk that the final types depend on: its first row (the
    dtypes, resolved as ``pd.concat`` would) and, per float column, whether every value is whole
    (so a column made float only by blanks can be written as a nullable integer)."""

    def __init__(self) -> None:
        self.heads: list[pd.DataFrame] = []
        self.not_whole: set[str] = set()
        self.text_types: dict = {}  # a text column's Arrow type, from the first chunk with a value

    def schema(self, head: pd.DataFrame):
        """The file's Arrow schema: ``head``'s (the whole's types), text columns typed by their values."""
        import pyarrow as pa

        schema = pa.Schema.from_pandas(head, preserve_index=False)
        for col, typ in self.text_types.items():
            i = schema.get_field_index(col)
            if i >= 0 and pa.types.is_null(schema.field(i).type):
                schema = schema.set(i, schema.field(i).with_type(typ))
        return schema

    def observe(self, df: pd.DataFrame) -> None:
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        self.heads.append(df.iloc[:1].copy())  # a copy: a view would keep the whole chunk alive
        for col in df.columns:
            if df[col].dtype == object and col not in self.text_types and df[col].notna().any():
                self.text_types[col] = pa.array(df[col].dropna().iloc[:1000], from_pandas=True).type
            if pd.api.types.is_float_dtype(df[col]):
                values = df[col].dropna().to_numpy()
                if not (np.isfinite(values).all() and (values == np.round(values)).all()):
                    self.not_whole.add(col)

    def dtypes(self) -> dict:
        import pandas as pd

        heads = [h for h in self.heads if len(h)] or self.heads
        return dict(pd.concat(heads, ignore_index=True).dtypes) if heads else {}


def write_chunks(
    chunks: Iterable[pd.DataFrame],
    path: Path,
    retype: Callable[[dict, set[str]], dict] | None = None,
) -> tuple[int, str]:
    """Write ``chunks`` as one Parquet file at ``path`` (atomic) holding at most one chunk in
    memory; returns ``(rows, sha256)`` where the hash is :func:`include.foundation.storage.frame_digest`
    of the frame ``pd.concat(chunks)`` would have made, so it equals the unchunked ingest's.

    Pass one writes each chunk aside as it comes and notes its types; pass two gives every chunk
    the types of the whole (``retype(dtypes, not_whole)`` may change them, e.g. whole floats to
    nullable integers), hashes it and appends it to the file as a row group."""
    import pandas as pd
    import pyarrow as pa

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.chunks."))
    try:
        stats, pieces = ChunkStats(), []
        for i, df in enumerate(chunks):
            if not len(df) and pieces:
                continue
            stats.observe(df)
            piece = scratch / f"{i:06d}.pkl"  # pickled as read: Parquet would already coerce types
            df.to_pickle(piece)
            pieces.append(piece)
        dtypes = stats.dtypes()
        if retype is not None:
            dtypes = retype(dtypes, stats.not_whole)
        rows, digest = 0, hashlib.sha256(json.dumps([[c, str(t)] for c, t in dtypes.items()]).encode())

        def write(tmp: Path) -> None:
            nonlocal rows
            writer = None
            try:
                for piece in pieces or [None]:
                    df = pd.read_pickle(piece) if piece else pd.DataFrame(columns=list(dtypes))
                    df = _typed(df, dtypes)
                    rows += len(df)
                    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
                    writer = writer or _writer(tmp, stats.schema(df.iloc[:0]))
                    writer.write_table(pa.Table.from_pandas(df, schema=writer.schema, preserve_index=False))
                    if piece:
                        piece.unlink()
            finally:
                if writer is not None:
                    writer.close()

        atomic_write(path, write)
        return rows, digest.hexdigest()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _typed(df: pd.DataFrame, dtypes: dict) -> pd.DataFrame:
    """``df`` with every column of the whole, in its order and type (a column a chunk lacks is
    all nulls, as in a concat)."""
    import numpy as np
    from pandas.api.types import is_object_dtype

    for col in dtypes:
        if col not in df:
            df[col] = np.nan
    df = df[list(dtypes)]
    # text in another chunk: this chunk's numbers as the text they were read from (not Python numbers
    # in a text column, which Parquet cannot hold)
    texts = {c: df[c].astype(str).where(df[c].notna(), None) for c, t in dtypes.items()
             if is_object_dtype(t) and not is_object_dtype(df[c])}  # fmt: skip
    if texts:
        df = df.assign(**texts)
    changed = {c: t for c, t in dtypes.items() if df[c].dtype != t}
    return df.astype(changed) if changed else df


def _writer(path: Path, schema):
    import pyarrow.parquet as pq

    return pq.ParquetWriter(path, schema)
