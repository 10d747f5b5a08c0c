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
