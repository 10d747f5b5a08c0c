"""The one place that knows where a table lives: layer, source and name give its asset key and its path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Layer = Literal["bronze", "silver", "gold"]
LAYERS: tuple[Layer, ...] = ("bronze", "silver", "gold")


@dataclass(frozen=True, order=True)
class TableRef:
    """A Delta table in the lake: ``<root>/<layer>/<source>/<table>``, asset key ``[layer, source, table]``."""

    layer: Layer
    source: str
    table: str

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, not {self.layer!r}")
        for part in (self.source, self.table):
            if not part or "/" in part or part.strip() != part:
                raise ValueError(f"bad table name part {part!r} in {self}")

    @property
    def path(self) -> str:
        """Path below the lake root."""
        return f"{self.layer}/{self.source}/{self.table}"

    @property
    def key_path(self) -> list[str]:
        """The Dagster asset key path of the asset that writes this table."""
        return [self.layer, self.source, self.table]

    @property
    def group_name(self) -> str:
        """The Dagster asset group: layer and source, so the UI groups the graph the way the lake is laid out."""
        return f"{self.layer}_{self.source}"

    @classmethod
    def from_key_path(cls, parts: list[str] | tuple[str, ...]) -> TableRef:
        if len(parts) != 3:
            raise ValueError(f"an asset key for a lake table has three parts, not {list(parts)}")
        layer, source, table = parts
        return cls(layer, source, table)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.path
