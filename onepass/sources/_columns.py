"""Resolving label_column / weight_column against a file's columns."""

from __future__ import annotations

from onepass.errors import InvalidParameterError, MissingColumnsError


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


def select_features(names: list[str] | None, default: list[int], wanted: list[str] | None,
                    where: str) -> list[int]:
    """The indices of X's columns in a file with these column ``names``: ``default``
    (every column but label and weight), or, when ``wanted`` names the columns a model
    was trained on, those columns matched by name, in that order (other columns are left
    out). A file without a header cannot be matched: ``default`` then."""
    if wanted is None or names is None:
        return default
    missing = [c for c in wanted if c not in names]
    if missing:
        shown = ", ".join(map(repr, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        has = ", ".join(map(repr, names[:20])) + (" ..." if len(names) > 20 else "")
        raise MissingColumnsError(
            f"{where} lacks the column(s) {shown} the model was trained on (its columns are {has}); "
            "give data with the model's columns (their order does not matter)")
    return [names.index(c) for c in wanted]
