"""report.html in a real browser: headless Chromium renders it with no console errors, every plot
is in the DOM, and the page makes no network request.

Network: Chromium is pointed at a local proxy (a socket this test opens) that records every
request it receives. Chromium's own service traffic (component updates, sign-in, network
time) goes there too, so requests to those browser-service hosts are set aside; anything else
is a request made by the page. A control page with an external image checks that the proxy
really sees page requests, and a control with ``console.error`` that console messages are seen.

Needs Debian's ``chromium`` (``apt-get install chromium``); skipped with a message elsewhere.
Only the standard library and pytest are used.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from planner.report import write_reports
from test_report_fixtures import make_result

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")) if p and Path(p).exists()), None)
PLOT_IDS = ["plot-compute", "plot-flops", "plot-dprime", "plot-plans", "plot-fit-parity", "plot-fit-residuals", "plot-form-residuals", "plot-isoloss"]
#: hosts Chromium itself contacts in the background (not requests made by the page)
BROWSER_SERVICE_HOSTS = re.compile(r"(^|\.)(google\.com|googleapis\.com|gvt1\.com|gvt2\.com)$")

if CHROMIUM is None:  # pragma: no cover - depends on the machine
    pytest.skip("chromium is not installed (apt-get install chromium): browser test skipped", allow_module_level=True)


class RecordingProxy:
    """A TCP listener that records the first request line of every connection and closes it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._handlers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            # one thread per connection: an idle socket must not hold back the next request
            handler = threading.Thread(target=self._record, args=(conn,), daemon=True)
            self._handlers.append(handler)
            handler.start()

    def _record(self, conn: socket.socket) -> None:
        conn.settimeout(10.0)
        try:
            line = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
        except OSError:
            line = ""
        # Chromium preconnects idle sockets to its proxy and may close them unused: a connection
        # that sends no request line fetches nothing, so it is not a page request (seen as a
        # flaky failure on a loaded machine). The control test checks that real ones are seen.
        if line:
            self.requests.append(line)
        conn.close()

    def close(self) -> None:
        self.sock.close()

    def page_requests(self) -> list[str]:
        """Requests whose host is not one of Chromium's own services."""
        for handler in list(self._handlers):  # every connection read (or timed out) before judging
            handler.join(timeout=15.0)
        out = []
        for line in self.requests:
            m = re.match(r"^[A-Z]+ (?:https?://)?([^/:\s]+)", line)
            host = m.group(1) if m else ""
            if not BROWSER_SERVICE_HOSTS.search(host):
                out.append(line)
        return out


def run_chromium(url: str, user_data_dir: Path, proxy: RecordingProxy, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-default-apps", "--no-pings", "--disable-domain-reliability",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
        f"--user-data-dir={user_data_dir}", f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *extra, url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser-report")
    write_reports(make_result(sweep=True, decision="robust-worst"), out, ["html"])
    return out / "report.html"


def test_controls_detect_requests_and_console_errors(tmp_path):
    page = tmp_path / "control.html"
    page.write_text('<!DOCTYPE html><html><body><p>control</p><img src="http://example.invalid/x.png">'
                    '<script>console.error("control-console-error")</script></body></html>')
    proxy = RecordingProxy()
    try:
        proc = run_chromium(page.as_uri(), tmp_path / "profile", proxy, "--dump-dom")
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any("example.invalid" in r for r in proxy.page_requests()), proxy.requests
    assert any("control-console-error" in m for m in console_messages(proc.stderr))


def test_report_renders_every_plot_without_errors_or_requests(report_html, tmp_path):
    html_text = report_html.read_text()
    # static: nothing in the page points outside it
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)""", html_text, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:https?:|//)|@import""", html_text, re.I)
    proxy = RecordingProxy()
    try:
        proc = run_chromium(report_html.as_uri(), tmp_path / "profile", proxy, "--dump-dom")
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<h1>Fixture plan</h1>" in dom
    for plot_id in PLOT_IDS:
        m = re.search(rf'<figure class="plot(?: wide)?" id="{plot_id}">(.*?)</figure>', dom, re.S)
        assert m, f"plot {plot_id} missing from the rendered DOM"
        assert "<svg" in m.group(1) and ("<path" in m.group(1) or "<use" in m.group(1))
    assert len(re.findall(r'<figure class="plot(?: wide)?"', dom)) == len(PLOT_IDS)
    assert console_messages(proc.stderr) == [], "console errors or messages while rendering"
    assert proxy.page_requests() == [], f"the page made network requests: {proxy.page_requests()}"


def test_report_screenshot(report_html, tmp_path):
    shot = tmp_path / "report.png"
    proxy = RecordingProxy()
    try:
        proc = run_chromium(report_html.as_uri(), tmp_path / "profile", proxy, "--hide-scrollbars",
                            "--window-size=1200,3800", f"--screenshot={shot}")
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a full page, not a blank one
    assert proxy.page_requests() == []
