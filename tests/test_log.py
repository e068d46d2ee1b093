"""Structured logs: JSON lines when not on a terminal, with bound context."""

from __future__ import annotations

import io
import json

from gitops import log


def test_json_lines_with_bound_context() -> None:
    out = io.StringIO()
    log.configure(json=True, stream=out)
    log.get_logger(revision="abc123", host="h1").info("step.done", service="web")
    record = json.loads(out.getvalue().strip())
    assert record["event"] == "step.done"
    assert (record["revision"], record["host"], record["service"], record["level"]) == ("abc123", "h1", "web", "info")


def test_console_renderer_when_asked() -> None:
    out = io.StringIO()
    log.configure(json=False, stream=out)
    log.get_logger().warning("hello", n=1)
    text = out.getvalue()
    assert "hello" in text and "n=1" in text and not text.startswith("{")


def test_level_filters() -> None:
    out = io.StringIO()
    log.configure(json=True, stream=out, level="warning")
    log.get_logger().info("hidden")
    assert out.getvalue() == ""
