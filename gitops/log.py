"""Structured logging: readable lines on a terminal, JSON lines otherwise (structlog).

Context such as revision, host and service is bound with ``structlog.contextvars`` or ``log.bind``
and appears on every line logged inside it.
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
from typing import Any

import structlog

from gitops.plan import ci_safe_json, terminal_line


def configure(*, level: str = "info", json: bool | None = None, stream: Any = None) -> None:
    stream = stream or sys.stderr
    as_json = (not stream.isatty()) if json is None else json
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer(serializer=_dumps)]
    else:
        processors += [_escape_strings, structlog.dev.ConsoleRenderer(colors=stream.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("gitops").bind(**context)


# Logged values include what hosts and repositories say (errors, container output, file names): on a
# terminal they must not move the cursor or add lines, and in CI no line may command the runner.
def _dumps(obj: Any, **kwargs: Any) -> str:
    return ci_safe_json(jsonlib.dumps(obj, **kwargs))


def _escape_strings(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {key: terminal_line(value) if isinstance(value, str) else value for key, value in event_dict.items()}
