"""What a person sees while an apply runs, and its outcome.

On a terminal: a live rich display, one line per step. Elsewhere: one structured log line per
step event (JSON lines when not on a terminal).
"""

from __future__ import annotations

import sys
import threading

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gitops.core.plan import Plan, short_revision, terminal_line
from gitops.engine.executor import ApplyResult, Executor
from gitops.log import get_logger

STATUS_STYLE = {"running": "cyan", "done": "green", "failed": "red", "rolled_back": "yellow", "skipped": "dim",
                "unchanged": "dim", "waiting": "dim"}


def run_with_progress(executor: Executor, plan: Plan) -> ApplyResult:
    steps = plan.changes
    if not sys.stderr.isatty():
        log = get_logger(project=plan.project, revision=short_revision(plan.revision))

        def hook(step_id: str, status: str, message: str) -> None:
            step = next((s for s in steps if s.id == step_id), None)
            log.info("step", step=step_id, host=step.host if step else "", status=status, message=message,
                     **({step.kind: step.name} if step else {}))

        executor.on_event = hook
        return executor.apply(plan)

    status = {s.id: ("waiting", "") for s in steps}
    lock = threading.Lock()

    def table() -> Table:
        grid = Table.grid(padding=(0, 2))
        with lock:
            for s in steps:
                state, message = status[s.id]
                # Text, not markup: names and messages are shown as they are, escaped (a host's
                # error could hold '[bold]' or terminal escapes)
                grid.add_row(Text(state, style=STATUS_STYLE.get(state, "white")),
                             Text(terminal_line(f"{s.label} on {s.host}")), Text(s.action),
                             Text(terminal_line(message)[:80]))
        return grid

    console = Console(stderr=True)
    with Live(table(), console=console, refresh_per_second=8, transient=False) as live:
        def show(step_id: str, state: str, message: str) -> None:
            with lock:
                if step_id in status:
                    status[step_id] = (state, message)
            live.update(table())

        executor.on_event = show
        result = executor.apply(plan)
        live.update(table())
    return result


def print_outcome(result: ApplyResult) -> None:
    counts: dict[str, int] = {}
    for r in result.steps.values():
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
    # Errors, health-check output and log lines are what hosts and containers said: one escaped line each.
    for error in result.errors:
        click.echo(terminal_line(f"error: {error}"), err=True)
    for svc in sorted(result.services.values(), key=lambda s: s.service):
        if svc.status == "converged":
            continue
        click.echo(terminal_line(f"{svc.service}: {svc.status}: {svc.message}"), err=True)
        if svc.health_output:
            click.echo(terminal_line(f"  health check output: {svc.health_output}"), err=True)
        if svc.logs:
            click.echo("  last log lines:", err=True)
            for line in svc.logs.splitlines()[-20:]:
                click.echo(terminal_line(f"    {line}"), err=True)
    verdict = "Apply succeeded" if result.ok else "Apply FAILED"
    click.echo(f"{verdict} in {result.seconds:.1f}s ({parts or 'nothing to do'})", err=not result.ok)
