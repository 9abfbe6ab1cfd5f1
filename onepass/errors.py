"""The one exception tree of onepass.

::

    OnePassError
    ├── InvalidParameterError (ValueError)   a setting out of range or unknown      exit 2
    ├── DataError (ValueError)               the data cannot be used                exit 3
    │   ├── BadRecordError                   one record is malformed (says where)
    │   ├── EmptySourceError                 a source yields no rows
    │   ├── SourceNotFoundError              a path, glob or URL matches nothing
    │   └── FeatureCountError                a batch's width differs from the state's
    ├── ArtifactError                        a checkpoint or model file cannot be used  exit 1
    │   ├── CheckpointCorruptError           damaged or truncated (checksum, missing file)
    │   └── ForeignFormatError               not a onepass artifact, or a newer format
    ├── IncompatibleStateError               merge/resume of states that do not match
    └── NotFittedError (ValueError)          a model asked for before any data was seen

Every message names the quantity, the value received, where, and the fix.
Exit codes for the CLI are mapped in one place: :data:`EXIT_CODES`.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "ArtifactError",
    "BadRecordError",
    "CheckpointCorruptError",
    "DataError",
    "EmptySourceError",
    "FeatureCountError",
    "ForeignFormatError",
    "IncompatibleStateError",
    "InvalidParameterError",
    "NotFittedError",
    "OnePassError",
    "SourceNotFoundError",
    "exit_code",
]


class OnePassError(Exception):
    """Base class of every error onepass raises on purpose."""


class InvalidParameterError(OnePassError, ValueError):
    """A hyperparameter or option has a value outside its valid range."""


class DataError(OnePassError, ValueError):
    """The data given cannot be used as it is."""


class BadRecordError(DataError):
    """One record is malformed.

    Attributes ``source`` (file or URL), ``line`` (1-based line or record number, or
    None), ``column`` (name or 0-based index, or None) and ``reason`` say where and why.
    """

    def __init__(self, reason: str, *, source: str | None = None,
                 line: int | None = None, column: str | int | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
        where = []
        if line is not None:
            where.append(f"line {line}")
        if source is not None:
            where.append(f"of {source}" if line is not None else str(source))
        if column is not None:
            where.append(f"column {column!r}" if isinstance(column, str) else f"column {column}")
        prefix = " ".join(where)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)


class EmptySourceError(DataError):
    """A source yielded no usable rows."""


class SourceNotFoundError(DataError):
    """A path, glob, folder or URL matches no file."""


class FeatureCountError(DataError):
    """A batch has a different number of features than the state was trained on."""


class ArtifactError(OnePassError):
    """A checkpoint or model directory cannot be loaded."""


class CheckpointCorruptError(ArtifactError):
    """An artifact is damaged or truncated: a file is missing or fails its checksum."""


class ForeignFormatError(ArtifactError):
    """A directory is not a onepass artifact, or was written by a newer format."""


class IncompatibleStateError(OnePassError):
    """Two states cannot be merged, or a checkpoint does not match the run resuming it."""


class NotFittedError(OnePassError, ValueError, AttributeError):
    """A model or prediction was asked for before the state saw any data.

    A ValueError and an AttributeError, like scikit-learn's own ``NotFittedError``.
    """


# The one place errors map to process exit codes (the CLI uses it, nothing else does).
EXIT_CODES: dict[type[BaseException], int] = {
    InvalidParameterError: 2,
    DataError: 3,
    OnePassError: 1,
}


def exit_code(error: BaseException) -> int:
    """Exit code for ``error``: the entry of its nearest class in :data:`EXIT_CODES`."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1
