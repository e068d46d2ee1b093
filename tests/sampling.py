"""Background samplers for tests: something checked every 50 ms while a test's action runs."""

from __future__ import annotations

import threading
import urllib.request


def fetch(port: int, timeout: float = 1.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as response:
        return response.read().decode()


class Sampler:
    """Calls ``tick()`` every ``period`` seconds in a thread, from ``with`` entry to exit."""

    period = 0.05

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.period)

    def __enter__(self):  # type: ignore[no-untyped-def]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _service_filter(project: str, svc: str) -> dict[str, list[str]]:
    return {"label": [f"io.gitops.project={project}", f"io.gitops.service={svc}"]}


class Prober(Sampler):
    """Requests the service every 50 ms; a tick fails when no container of the service answers."""

    def __init__(self, client, project: str, svc: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.client, self.filters = client, _service_filter(project, svc)
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()

    def tick(self) -> None:
        items = self.client.api.containers(filters=self.filters)
        ports = [p["PublicPort"] for c in items for p in c.get("Ports", []) if p.get("PublicPort")]
        errors = []
        for port in ports:
            try:
                self.bodies.add(fetch(port, timeout=0.5).strip())
                self.ok += 1
                return
            except OSError as exc:
                errors.append(f"{port}: {exc}")
        self.failures.append("; ".join(errors) or "no container published a port")


class RunningCount(Sampler):
    """The largest number of running containers of the service seen (invariant I2)."""

    def __init__(self, client, project: str, svc: str = "web") -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.client, self.filters = client, _service_filter(project, svc)
        self.max = 0

    def tick(self) -> None:
        self.max = max(self.max, len(self.client.api.containers(filters=self.filters)))


class RunningPerService(Sampler):
    """The largest number of running containers seen per service of a project, from one list call a tick."""

    def __init__(self, client, project: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.client, self.filters = client, {"label": [f"io.gitops.project={project}"]}
        self.max: dict[str, int] = {}

    def tick(self) -> None:
        now: dict[str, int] = {}
        for c in self.client.api.containers(filters=self.filters):
            svc = (c.get("Labels") or {}).get("io.gitops.service", "")
            now[svc] = now.get(svc, 0) + 1
        for svc, count in now.items():
            self.max[svc] = max(self.max.get(svc, 0), count)
