"""Resolving label_column / weight_column against a file's columns."""

from __future__ import annotations

from onepass.errors import InvalidParameterError


def resolve_column(spec: str | int | None, names: list[str] | None, n_cols: int,
                   what: str, where: str) -> int | None:
    """0-based index of column ``spec`` (a name or an index, negative from the end)."""
    if spec is None:
        return None
    if isinstance(spec, bool) or not isinstance(spec, (str, int)):
        raise InvalidParameterError(f"{what}={spec!r} must be a column name or a 0-based index")
    if isinstance(spec, str):
        if names is None:
            raise InvalidParameterError(
                f"{what}={spec!r} is a name, but {where} has no header; pass a 0-based "
                "index or header=True")
        if spec not in names:
            shown = ", ".join(map(repr, names[:20])) + (" ..." if len(names) > 20 else "")
            raise InvalidParameterError(
                f"{what}={spec!r} is not a column of {where}; columns are {shown}")
        return names.index(spec)
    if not -n_cols <= spec < n_cols:
        raise InvalidParameterError(
            f"{what}={spec} is out of range: {where} has {n_cols} columns (0-{n_cols - 1})")
    return spec % n_cols


def feature_indices(n_cols: int, label: int | None, weight: int | None,
                    what: str = "label_column") -> list[int]:
    if label is not None and label == weight:
        raise InvalidParameterError(
            f"label_column and weight_column are the same column ({label})")
    return [j for j in range(n_cols) if j != label and j != weight]
