"""`stratmon report --html`: a self-contained page whose plots really render in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from collector.sources.synthetic import synthetic_fills, write_jsonl

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="make test installs Debian's chromium (scripts/ensure-chromium.sh)")
def test_html_report_renders_its_plots(tmp_path: Path) -> None:
    fills = tmp_path / "fills.jsonl"
    write_jsonl(str(fills), synthetic_fills(4000, seed=5, step_ns=600 * 10**9))
    page = tmp_path / "report.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector",
            "report",
            str(fills),
            "--html",
            str(page),
            "--dead-letter",
            str(tmp_path / "dead.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert "<script" not in text and not re.search(r'(src|href)="https?://', text)  # self-contained
    assert CHROMIUM is not None
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1300,4000"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    svgs = re.findall(r"<svg.*?</svg>", dom, re.S)
    assert len(svgs) == 6  # portfolio, accounts, strategies, heatmap, ranking, alerts timeline
    assert all(svg.count("<path") > 10 for svg in svgs)  # drawn, not empty frames
    assert dom.count("<tr>") >= 32  # the strategy table: header + 31 strategies
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] == 4000 and pixels.shape[1] == 1300
    colored = (abs(pixels[..., 0] - pixels[..., 1]) > 0.1) | (abs(pixels[..., 1] - pixels[..., 2]) > 0.1)
    assert colored.mean() > 0.02  # lines, bars and the heatmap are on screen in colour
