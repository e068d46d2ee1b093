"""Structured logging: readable lines on a terminal, JSON lines otherwise (structlog).

Context such as revision, host and service is bound with ``structlog.contextvars`` or ``log.bind``
and appears on every line logged inside it.

Start-up time: ``import structlog`` imports ``structlog.dev``, which imports rich's console and
traceback modules whenever rich is installed (about 0.1 s), and no renderer setting avoids that. So
``configure`` only records the settings, and structlog is imported and configured when the first
logger is made: a command that logs nothing never loads it.
"""

from __future__ import annotations

import json as jsonlib
import sys
import threading
from typing import Any

_pending: dict[str, Any] | None = None  # settings from configure() not yet given to structlog
_lock = threading.Lock()


def configure(*, level: str = "info", json: bool | None = None, stream: Any = None) -> None:
    """Record the settings; they take effect when the next logger is made (get_logger)."""
    global _pending
    stream = stream or sys.stderr  # the stream of the moment configure is called, as before
    with _lock:
        _pending = {"level": level, "json": json, "stream": stream}


def _apply(*, level: str, json: bool | None, stream: Any) -> None:
    import logging

    import structlog

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
    global _pending
    with _lock:
        if _pending is not None:
            _apply(**_pending)
            _pending = None
    import structlog

    return structlog.get_logger("gitops").bind(**context)


# Logged values include what hosts and repositories say (errors, container output, file names): on a
# terminal they must not move the cursor or add lines, and in CI no line may command the runner.
def _dumps(obj: Any, **kwargs: Any) -> str:
    from gitops.core.plan import ci_safe_json

    return ci_safe_json(jsonlib.dumps(obj, **kwargs))


def _escape_strings(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    from gitops.core.plan import terminal_line

    return {key: terminal_line(value) if isinstance(value, str) else value for key, value in event_dict.items()}
