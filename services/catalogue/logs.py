"""Structured logs: one JSON object a line, with nothing in them that a log reader should not see.

Every line has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``, then the fields a
call passes in ``extra`` (``submission_id``, ``org_code``, ``job_id``...) and, for an error,
``exception`` (the formatted traceback). Log calls name things by id and count them; they never
hold a return's values, a file's contents, a submission's error messages (which quote values),
tokens or passwords. As a second line of defence, :class:`RedactSecrets` masks anything that looks
like a token (``drb_...``, ``Bearer ...``) or credentials in a URI (``user:password@``, an S3
URI's ``access_key=``, ``secret_key=`` or ``session_token=``, an AWS access key id), and an
exception whose text may quote a file (``extra=fields(..., exception_text=False)``) is logged
by its type and frames only.

``drb serve`` and ``drb worker`` install this with :func:`configure`, and ``drb serve`` hands
:func:`uvicorn_log_config` to uvicorn so that its access log is JSON too, with the path but
without the query string.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's, with terminal colours
)
_EXCEPTION_TEXT = "exception_text"
_SECRETS = [
    # A broker token, wherever it appears: drb_ and 43 URL-safe characters.
    (re.compile(r"\bdrb_[A-Za-z0-9_-]{8,}"), "drb_***"),
    # An Authorization header's credentials, whatever the token looks like.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    # A password in a URL: scheme://user:password@host.
    (re.compile(r"(://[^:/@\s]*):[^@\s/]+@"), r"\1:***@"),
    # Any other credentials in a URL (s3://ACCESS_KEY@bucket): the whole user part.
    (re.compile(r"://[^:/@\s]+@"), "://***@"),
    # key=value pairs that name a secret (query strings, MESH's authorisation parameters, an S3
    # URI's access_key, secret_key or session_token).
    (
        re.compile(r"(?i)\b(\w*(?:token|password|passwd|secret|key|credential)\w*)=[^&\s\"',;]+"),
        r"\1=***",
    ),
    # An AWS access key id, wherever it appears.
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), r"\1***"),
]


def redact(text: str) -> str:
    """``text`` with anything that looks like a token or a password masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def fields(*, exception_text: bool = True, **values: Any) -> dict[str, Any]:
    """``extra`` for a log call: named fields, and whether an exception's text may be logged
    (False where it may quote a file's values: only its type and frames are then logged)."""
    return {**values, _EXCEPTION_TEXT: exception_text}


def _traceback_without_text(exc_info: Any) -> str:
    kind, _value, tb = exc_info
    frames = "".join(traceback.format_list(traceback.extract_tb(tb)))
    name = getattr(kind, "__qualname__", str(kind))
    return (
        f"Traceback (most recent call last):\n{frames}{name} "
        "(its text is not logged: it may quote the values of a file)"
    )


class RedactSecrets(logging.Filter):
    """Mask tokens and passwords in a record's message, fields and traceback, in place (so that
    every handler sees the masked record), and drop the text of exceptions marked as holding
    values."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, redact(value))
        if record.exc_info and record.exc_info[0] is not None:
            if getattr(record, _EXCEPTION_TEXT, True) is False:
                record.exc_text = _traceback_without_text(record.exc_info)
            else:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the call's fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name != _EXCEPTION_TEXT and name not in entry:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class AccessLogFields(logging.Filter):
    """uvicorn's access log as fields, with the path but not the query string (which may hold
    anything a client put there). uvicorn logs ``(client, method, path?query, http, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, target, http_version, status = args
            path = str(target).split("?", 1)[0]
            record.msg = '%s - "%s %s HTTP/%s" %d'
            record.args = (client, method, path, http_version, status)
            record.client = client
            record.method = method
            record.path = path
            record.status = status
        return True


def handler() -> logging.Handler:
    """A stderr handler writing JSON lines, with secrets masked."""
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter())
    stream.addFilter(RedactSecrets())
    return stream


def configure(level: str = "INFO") -> None:
    """Make every log line of this process JSON on stderr (the root logger's only handler)."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler())
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warnings are JSON lines too
    logging.getLogger("alembic").setLevel(logging.WARNING)


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's loggers pass their records to the root's JSON handler (see :func:`configure`);
    the access log drops the query string. For ``uvicorn.run(log_config=...)``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"access_fields": {"()": AccessLogFields}},
        "loggers": {
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {
                "level": level,
                "handlers": [],
                "propagate": True,
                "filters": ["access_fields"],
            },
        },
    }
