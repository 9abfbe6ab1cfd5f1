"""The one exception tree of onepass.

::

    OnePassError
    ├── InvalidParameterError (ValueError)   a setting out of range or unknown      exit 2
    ├── DataError (ValueError)               the data cannot be used                exit 3
    │   ├── BadRecordError                   one record is malformed (says where)
    │   ├── EmptySourceError                 a source yields no rows
    │   ├── SourceNotFoundError              a path, glob or URL matches nothing
    │   ├── FeatureCountError                a batch's width differs from the state's
    │   └── EmptyBodyError                   an HTTP request body holds no rows      HTTP 400
    ├── ArtifactError                        a checkpoint or model file cannot be used  exit 1
    │   ├── CheckpointCorruptError           damaged, truncated or forged: a checksum, a  exit 3
    │   │                                    missing file, a manifest or an array not of
    │   │                                    the shape onepass writes (of a model too)
    │   └── ForeignFormatError               not a onepass artifact, or a newer format
    ├── IncompatibleStateError               merge/resume of states that do not match
    ├── RequestError                         an HTTP request the server cannot take as sent
    │   ├── UnsupportedMediaTypeError        Content-Type not served                HTTP 415
    │   ├── NotAcceptableError               no Accept type the server can answer   HTTP 406
    │   └── PayloadTooLargeError             body over the server's limit           HTTP 413
    └── NotFittedError (ValueError)          a model asked for before any data was seen

``CheckpointSkippedWarning`` (a UserWarning) says which damaged checkpoint a resume skipped.

Every message names the quantity, the value received, where, and the fix.
Exit codes for the CLI are mapped in one place, :data:`EXIT_CODES`, and HTTP statuses of
the model server in another, :data:`HTTP_STATUSES` (any ``DataError`` is the client's:
400; anything not listed is the server's: 500).
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "HTTP_STATUSES",
    "ArtifactError",
    "BadRecordError",
    "CheckpointCorruptError",
    "CheckpointSkippedWarning",
    "DataError",
    "EmptyBodyError",
    "EmptySourceError",
    "FeatureCountError",
    "ForeignFormatError",
    "IncompatibleStateError",
    "InvalidParameterError",
    "MissingColumnsError",
    "NotAcceptableError",
    "NotFittedError",
    "OnePassWarning",
    "OnePassError",
    "PayloadTooLargeError",
    "RequestError",
    "SourceNotFoundError",
    "UnsupportedMediaTypeError",
    "exit_code",
    "http_status",
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


class MissingColumnsError(FeatureCountError):
    """Data lacks columns a model was trained on (matched by name): the message names them."""


class EmptyBodyError(DataError):
    """An HTTP request body holds no rows."""


class ArtifactError(OnePassError):
    """A checkpoint or model directory cannot be loaded."""


class CheckpointCorruptError(ArtifactError):
    """An artifact is damaged or truncated: a file is missing or fails its checksum."""


class OnePassWarning(UserWarning):
    """Base of onepass's warnings: the command line says them as ``onepass: warning: ...``."""


class CheckpointSkippedWarning(OnePassWarning):
    """A damaged checkpoint was skipped for an older one that verifies (resume, finalize)."""


class ForeignFormatError(ArtifactError):
    """A directory is not a onepass artifact, or was written by a newer format."""


class IncompatibleStateError(OnePassError):
    """Two states cannot be merged, or a checkpoint does not match the run resuming it."""


class NotFittedError(OnePassError, ValueError, AttributeError):
    """A model or prediction was asked for before the state saw any data.

    A ValueError and an AttributeError, like scikit-learn's own ``NotFittedError``.
    """


class RequestError(OnePassError):
    """An HTTP request the model server cannot take as it was sent."""


class UnsupportedMediaTypeError(RequestError):
    """The request's Content-Type is not one the server reads."""


class NotAcceptableError(RequestError):
    """None of the types the request's Accept header allows is one the server writes."""


class PayloadTooLargeError(RequestError):
    """The request body is larger than the server's payload limit."""


# The one place errors map to process exit codes (the CLI uses it, nothing else does).
EXIT_CODES: dict[type[BaseException], int] = {
    InvalidParameterError: 2,
    DataError: 3,
    CheckpointCorruptError: 3,  # a damaged or forged checkpoint or model is bad input, like bad data
    OnePassError: 1,
}


def _nearest(table: dict[type[BaseException], int], error: BaseException, default: int) -> int:
    """The entry of the nearest class of ``error`` (in method resolution order) in ``table``."""
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    return default


def exit_code(error: BaseException) -> int:
    """Exit code for ``error``: the entry of its nearest class in :data:`EXIT_CODES`."""
    return _nearest(EXIT_CODES, error, 1)


# The one place errors map to HTTP statuses (the model server uses it, nothing else does).
HTTP_STATUSES: dict[type[BaseException], int] = {
    UnsupportedMediaTypeError: 415,
    NotAcceptableError: 406,
    PayloadTooLargeError: 413,
    DataError: 400,
    InvalidParameterError: 400,
}


def http_status(error: BaseException) -> int:
    """HTTP status for ``error``: its nearest class in :data:`HTTP_STATUSES`, else 500."""
    return _nearest(HTTP_STATUSES, error, 500)
