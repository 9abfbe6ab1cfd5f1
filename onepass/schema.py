"""The input schema a model remembers: what it was trained on, column by column.

``onepass train`` writes it into the model's manifest (``"schema"``): the features by
name and in order when the data had a header, their number, the label and weight
columns and the format. ``predict`` and ``evaluate`` read other data through it: columns
are matched by name (any order; the label and other extra columns left out), and a
width that does not fit says what differs and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onepass.errors import MissingColumnsError

__all__ = ["InputSchema"]


@dataclass(frozen=True)
class InputSchema:
    """What a model was trained on; every field None when it is not known (a model from
    before schemas, or written by :func:`onepass.save_model` from a state)."""

    feature_names: list[str] | None = None
    columns: list[str] | None = None  # every column of the training data's header, in order
    n_features: int | None = None
    label_column: str | int | None = None
    weight_column: str | int | None = None
    format: str | None = None

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> InputSchema:
        """The schema a model's manifest holds (an empty one when it holds none)."""
        raw = manifest.get("schema")
        if not isinstance(raw, dict):
            return cls()
        names, columns = (_names(raw.get(key)) for key in ("feature_names", "columns"))
        width = raw.get("n_features")
        return cls(feature_names=names, columns=columns, n_features=width if isinstance(width, int) else None,
                   label_column=_column(raw.get("label_column")), weight_column=_column(raw.get("weight_column")),
                   format=raw.get("format") if isinstance(raw.get("format"), str) else None)

    def source_options(self, *, label_column: str | int | None = None,
                       weight_column: str | int | None = None) -> dict[str, Any]:
        """:func:`onepass.open_source`'s keywords to read data for this model: the
        features by name when the model knows them (the label, when present, is then left
        out with the other columns it was not trained on), and the label and weight
        columns the user gives."""
        out: dict[str, Any] = {}
        if self.feature_names is not None:
            out["feature_columns"] = list(self.feature_names)
        if label_column is not None:
            out["label_column"] = label_column
        if weight_column is not None:
            out["weight_column"] = weight_column
        return out

    def label_index(self, width: int) -> int | None:
        """Where the label column is in rows of ``width`` values laid out as the training
        data was (rows without a header: a request's), when they hold the features and the
        label and nothing else; None otherwise."""
        if self.n_features is None or width != self.n_features + 1 or self.weight_column is not None:
            return None
        if isinstance(self.label_column, int):
            return self.label_column % width if -width <= self.label_column < width else None
        if isinstance(self.label_column, str) and self.columns is not None and len(self.columns) == width:
            return self.columns.index(self.label_column) if self.label_column in self.columns else None
        return None

    def label_in(self, data: Any, **options: Any) -> int | None:
        """The index of the model's label column in ``data`` when its files have no header
        and their rows are one value wider than the features, the label where the
        training data had it (read from the first row); None otherwise, and for data
        that cannot be read twice (stdin, a stream)."""
        from onepass.sources import open_source
        from onepass.sources.transports import is_record_uri

        uris = data if isinstance(data, list) else [data]
        if self.label_column is None or self.n_features is None or any(
                str(u) == "-" or is_record_uri(str(u)) for u in uris):
            return None
        options = {k: v for k, v in options.items() if k not in ("feature_columns", "quarantine_file")}
        with open_source(data, batch_size=1, **{**options, "on_bad_record": "skip"}) as src:
            batch = next(iter(src), None)
            if batch is None or src.columns is not None or getattr(batch.X, "ndim", 0) != 2:
                return None
            return self.label_index(int(batch.X.shape[1]))

    def explain(self, error: Exception, *, label_given: bool) -> str:
        """``error``'s message (a width that does not fit) with what the model was trained on
        and the fix; a missing column's says it already."""
        message = str(error)
        if isinstance(error, MissingColumnsError):
            return message
        trained = (f"the model was trained on {self.n_features} features" if self.n_features is not None
                   else "the model was trained on other columns")
        if self.feature_names is not None:
            trained += " named " + ", ".join(map(repr, self.feature_names[:20])) + (
                " ..." if len(self.feature_names) > 20 else "")
        hint = ""
        if self.label_column is not None and not label_given:
            index = " (or its 0-based index, in data without a header)" if isinstance(self.label_column, str) else ""
            hint = (f"; it was trained with --label-column {self.label_column}, left out of its features: if the "
                    f"data still holds that column, give --label-column {self.label_column}{index}")
        elif self.feature_names is not None:
            hint = "; data with a header naming those columns is matched by name"
        return f"{message} ({trained}{hint})"


def _names(value: Any) -> list[str] | None:
    return [str(n) for n in value] if isinstance(value, list) else None


def _column(value: Any) -> str | int | None:
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None
