"""The web page in a real browser: Debian's chromium, headless, driven by playwright, against a real `gitops
daemon` process reconciling a real git repository on the real engine.

(a) a converged project renders with its service, replicas, revision, host and history; (b) a rollout shows
live, without a reload, while it is applying and when it has converged; (c) a commit whose new version fails
its health check ends rolled back, and the page says so with the reason and the health-check output; (d) HTML
in that output and in a log line shows as text, and no dialog ever opens. Every wait is on a DOM condition
(playwright's expect); each state is kept as a screenshot under tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_ci, service
from tests.daemonutil import DaemonProcess
from tests.gitutil import Remote

pytestmark = pytest.mark.docker

CHROMIUM = Path("/usr/bin/chromium")
# ENGINE.md: as root, without a sandbox, and without reaching for hosts it cannot reach (playwright adds
# --headless and a fresh, empty profile folder itself)
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LONG = 90_000  # ms: a rollout on a loaded 2-core machine
SHORT = 20_000

FAST = "init: true\nstopGracePeriod: 2s\n"
CHECK = "healthcheck: {exec: ['sh', '-c', 'grep -q v1 /www/index.html'], interval: 200ms, retries: 2}\n" \
        "update: {healthyDeadline: 30s}\n"
# v2 passes this check, and must stay healthy 3 s before the rollout goes on: long enough to see it applying
SLOW_OK = "healthcheck: {exec: ['sh', '-c', 'grep -q web /www/index.html'], interval: 200ms, retries: 2}\n" \
          "update: {healthyDeadline: 30s, minHealthyTime: 3s}\n"
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>"
LOG_MARKUP = "<img src=x onerror=alert(3)>"
# v2 fails this check (its page says v2), after printing HTML; its first log line is HTML too
HOSTILE_FAIL = (
    "healthcheck:\n"
    f"  exec: [sh, -c, \"echo '{MARKUP} {{{{7*7}}}}'; grep -q v1 /www/index.html\"]\n"
    "  interval: 200ms\n"
    "  retries: 2\n"
    "update: {healthyDeadline: 30s}\n"
    f"command: [sh, -c, \"echo '{LOG_MARKUP}'; exec httpd -f -p 8080 -h /www\"]\n")


def artifact(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium. Outside CI a missing browser skips these tests; in CI it fails them."""
    problem = ""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        problem = f"playwright is not installed ({exc}): pip install -e '.[test]'"
    if not problem and not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium"
    if problem:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield launched
        launched.close()


class Watched:
    """A page with everything that must not happen recorded: dialogs (an alert from injected script),
    requests to anywhere but the daemon, CSP violations."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.origin = origin
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(SHORT)
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.console: list[str] = []

        def dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        self.page.on("dialog", dialog)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def check_nothing_happened(self) -> None:
        assert self.dialogs == [], f"a dialog opened: {self.dialogs}"
        assert [u for u in self.requests if not u.startswith(self.origin + "/") and not u.startswith("data:")] == []
        assert [m for m in self.console if "Content Security Policy" in m] == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def remote(tmp_path: Path, project_name: str) -> Remote:
    r = Remote(tmp_path / "git")
    r.commit({"project.yaml": f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n",
              "web.yaml": service("web", FAST + CHECK)}, "first")
    return r


def short(commit: str) -> str:
    return commit[:12]


def test_a_converged_project_and_a_rollout_shown_live(tmp_path, remote, docker_client, project_name, browser) -> None:
    from playwright.sync_api import expect

    first = remote.commit({}, "nothing")  # HEAD, as the daemon will fetch it
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--ref", "main", "--interval", "1h") as d:
        origin = f"http://127.0.0.1:{d.port}"
        host = d.status()["hosts"][0]["name"]
        watched = Watched(browser, origin)
        page = watched.page
        try:
            page.goto(origin + "/")
            # (a) converged: the service, its replicas and revision, the host, the history
            web = page.locator('tbody.service[data-service="web"]')
            expect(web.locator(".outcome")).to_have_text("converged")
            expect(web.locator(".healthy")).to_have_text("1/1")
            expect(web.locator(".up-to-date")).to_have_text("1/1")
            expect(web.locator(".desired")).to_have_text(short(first))
            expect(web.locator(".running")).to_have_text(short(first))
            expect(page.locator(f'#hosts tr[data-host="{host}"]')).to_have_attribute("data-reachable", "yes")
            expect(page.locator("#history tbody.pass").first).to_have_attribute("data-outcome", "converged")
            expect(page.locator("#history tbody.pass").first.locator(".summary")).to_have_text("1 create")
            expect(page.locator("#source")).to_contain_text(short(first))
            expect(page.locator("#pending")).to_contain_text("No changes")
            expect(page.locator("#live")).to_have_text("live")
            page.screenshot(path=artifact("web-converged.png"), full_page=True)

            # (b) a rollout, seen without reloading the page
            page.evaluate("window.sameDocument = true")
            second = remote.commit({"web.yaml": service("web", FAST + SLOW_OK, image="local/web:2")}, "web v2")
            assert d.github_push() == 202
            applying = page.locator('#activity[data-phase="applying"]')
            expect(applying).to_be_visible(timeout=LONG)
            expect(applying).to_contain_text(short(second))
            expect(applying.locator("tr.step[data-action=update]")).to_contain_text("web")
            expect(web.locator(".applying")).to_have_text("applying")
            page.screenshot(path=artifact("web-applying.png"), full_page=True)
            expect(page.locator("#activity")).to_have_attribute("data-phase", "idle", timeout=LONG)
            expect(web.locator(".outcome")).to_have_text("converged")
            expect(web.locator(".running")).to_have_text(short(second))
            expect(web.locator(".desired")).to_have_text(short(second))
            expect(page.locator("#project")).to_contain_text(short(second))
            expect(page.locator("#history tbody.pass").first.locator("td.mono").first).to_have_text(short(second))
            assert page.evaluate("window.sameDocument") is True  # swapped in place: no reload
            expect(web.locator(".applying")).to_have_count(0)
            watched.check_nothing_happened()
        finally:
            watched.close()
        # without JavaScript the same page is there, rendered on the server, and reloads itself
        plain = browser.new_context(java_script_enabled=False)
        try:
            still = plain.new_page()
            still.goto(origin + "/")
            expect(still.locator('tbody.service[data-service="web"] .running')).to_have_text(short(second))
            expect(still.locator('meta[http-equiv="refresh"]')).to_have_count(1)
            expect(still.locator("#live")).to_have_text("updates on reload")
        finally:
            plain.close()


def test_a_rolled_back_failure_with_html_in_its_output_shows_as_text(tmp_path, remote, docker_client, project_name,
                                                                        browser) -> None:
    from playwright.sync_api import expect

    first = remote.commit({}, "nothing")
    # A body timeout of 3 s: each event stream ends after 2 s, so the page follows the rollout across reconnects.
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--ref", "main", "--interval", "1h",
                       "--body-timeout", "3s") as d:
        origin = f"http://127.0.0.1:{d.port}"
        watched = Watched(browser, origin)
        page = watched.page
        try:
            page.goto(origin + "/")
            web = page.locator('tbody.service[data-service="web"]')
            expect(web.locator(".outcome")).to_have_text("converged")
            expect(page.locator("#live")).to_have_text("live")
            page.evaluate("window.sameDocument = true")
            with page.expect_request(lambda r: "/events" in r.url, timeout=SHORT):
                pass  # the first stream ended by itself and the browser opened the next one
            bad = remote.commit({"web.yaml": service("web", FAST + HOSTILE_FAIL, image="local/web:2")},
                                f"web v2 {MARKUP}")
            assert d.github_push() == 202

            # (c) rolled back, with the reason and the health-check output, arrived live
            expect(web).to_have_attribute("data-outcome", "rolled_back", timeout=LONG)
            expect(page.locator("#last-outcome")).to_have_text("failed")
            expect(web.locator(".running")).to_have_text(short(first))
            expect(web.locator(".desired")).to_have_text(short(bad))
            expect(web.locator("pre.reason")).not_to_be_empty()
            expect(page.locator("#history tbody.pass").first).to_have_attribute("data-outcome", "failed")
            assert page.evaluate("window.sameDocument") is True
            page.screenshot(path=artifact("web-rolled-back.png"), full_page=True)

            # (d) the HTML in the health-check output and the log line is text, in the live swap and on reload
            for how in ("swapped in", "reloaded"):
                expect(web.locator("pre.health-output")).to_contain_text(f"{MARKUP} {{{{7*7}}}}")
                expect(web.locator("pre.logs")).to_contain_text(LOG_MARKUP)
                assert page.locator("main img").count() == 0, how
                assert page.locator("script").count() == 1, how
                watched.check_nothing_happened()
                if how == "swapped in":
                    page.locator("tr.evidence", has=page.locator("pre.health-output")).first.screenshot(
                        path=artifact("web-hostile-output.png"))
                    page.reload()
                    expect(page.locator("#live")).to_have_text("live")
            assert page.evaluate("window.sameDocument") is None  # it did reload
        finally:
            watched.close()
