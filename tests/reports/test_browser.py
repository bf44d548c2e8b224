"""The HTML report in a real headless Chromium: it renders, logs no console message, and the `<script>` a
dataset smuggled into an example stays text.

Chromium comes from Debian (`apt-get install -y chromium`); without /usr/bin/chromium these tests skip.
Console messages are read from Chromium's own log (`--enable-logging=stderr`): each one is a
`:CONSOLE` line; `test_console_messages_are_detected` proves that channel works before we trust its silence.
"""
from __future__ import annotations

import html
import re
import struct
import subprocess
from pathlib import Path

import pytest

from reports.build import report_command

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium "
                                "(apt-get install -y chromium); the HTML report is not rendered in a browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,2000"]


def chromium(page: Path, tmp_path: Path, *action: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()],
                          capture_output=True, text=True, timeout=90)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_console_messages_are_detected(tmp_path):
    page = tmp_path / "noisy.html"
    page.write_text('<!DOCTYPE html><title>t</title><script>console.error("marker-42")</script>')
    done = chromium(page, tmp_path, "--dump-dom")
    assert any("marker-42" in line for line in console_messages(done.stderr)), done.stderr[-2000:]


@pytest.fixture()
def rendered(sst2_results, tmp_path):
    _, html_path = report_command(sst2_results, out=tmp_path / "report", title="Sentiment <study>")
    return html_path


def test_report_renders_without_console_messages_and_script_stays_text(rendered, tmp_path):
    done = chromium(rendered, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    dom = done.stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert html.unescape(title) == "Sentiment <study>"  # the payload would have set it to 'pwned'
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "<script" not in dom
    assert dom.count("<img") == 4 and "Task: sst2" in dom


def test_report_screenshot_is_a_real_page(rendered, tmp_path):
    shot = tmp_path / "report.png"
    done = chromium(rendered, tmp_path, f"--screenshot={shot}")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1280, 2000)
    assert len(data) > 50_000  # a blank 1280x2000 page compresses to a few KB; text, tables and plots do not


def test_report_prints_to_pdf(rendered, tmp_path):
    pdf = tmp_path / "report.pdf"
    done = chromium(rendered, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    assert done.returncode == 0 and pdf.exists(), done.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", data)) >= 2
