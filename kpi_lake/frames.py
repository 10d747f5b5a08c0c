"""Frame helpers shared by the lake and the layers."""

from __future__ import annotations

import polars as pl

Frame = pl.DataFrame | pl.LazyFrame


def delta_compatible(data: Frame) -> Frame:
    """Make a frame Delta-friendly without changing its values: naive timestamps become UTC, at µs."""
    schema = data.collect_schema() if isinstance(data, pl.LazyFrame) else data.schema
    casts = []
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Datetime):
            expr = pl.col(name)
            if dtype.time_zone is None:
                expr = expr.dt.replace_time_zone("UTC")
            elif dtype.time_zone != "UTC":
                expr = expr.dt.convert_time_zone("UTC")
            if dtype.time_unit == "ns":
                expr = expr.dt.cast_time_unit("us")
            casts.append(expr.alias(name))
        elif dtype == pl.Null:
            casts.append(pl.col(name).cast(pl.String))
    return data.with_columns(casts) if casts else data


def shared_hashes(hashes: pl.LazyFrame) -> pl.Series:
    """The values of the one (UInt64 hash) column of ``hashes`` that occur more than once.

    Found by sorting the hashes rather than grouping them: a hash table of tens of millions of distinct keys
    takes several times the memory of the 8-byte hashes themselves, a sort in place only the hashes (45M rows:
    360 MB). Collected with the streaming engine, so only the hash column is ever held.
    """
    import numpy as np

    column = hashes.collect(engine="streaming").to_series()
    values = column.to_numpy(writable=True)  # the column's own buffer when it has no nulls: no copy
    del column
    values.sort()
    repeated = np.unique(values[1:][values[1:] == values[:-1]])
    return pl.Series("_h", repeated, dtype=pl.UInt64)
