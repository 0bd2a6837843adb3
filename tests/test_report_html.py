"""`stratmon report --html`: the tear sheet's figures are the engine's, and every plot renders in headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import math
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from collector.cli import main
from collector.config import Settings
from collector.engine.series import Series
from collector.optimize.store import AuditLog, ChangeRecord, iso_time
from collector.report import Report, build_report
from collector.report_html import alerts_table, history_for, render_html
from collector.sources.synthetic import synthetic_fills, write_jsonl
from collector.tearsheet_history import Change, History
from collector.tearsheet_plots import _percent_ticks, timeline_plot
from collector.tearsheet_summary import Summary, summaries

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(__file__).resolve().parents[1] / "build" / "test-output"  # the screenshot, kept after the run
FIGURES = 9  # cumulative, underwater, rolling, histogram, correlation, strategy equity, two heatmaps, timeline
Z_05 = -1.6448536269514722  # standard normal 5% quantile


@dataclass
class Sheet:
    report: Report
    history: History
    levels: dict[str, list[Summary]]
    page: Path
    fills: Path


@pytest.fixture(scope="module")
def sheet(tmp_path_factory: pytest.TempPathFactory) -> Sheet:
    """A 31-strategy, 4-account desk over ~100 days (2,500 fills an hour apart), rendered once."""
    tmp = tmp_path_factory.mktemp("tearsheet")
    fills = tmp / "fills.jsonl"
    write_jsonl(str(fills), synthetic_fills(2500, seed=5, step_ns=3600 * 10**9))
    # no minimum sample: every series' Sharpe and Sortino exist, so the page is compared with the engine's
    settings = Settings(metrics={"min_days": 0, "min_round_trips": 0})
    history = history_for(settings)
    report = build_report(settings, [str(fills)], dead_letter=tmp / "dead.jsonl", observers=[history])
    page = tmp / "report.html"
    page.write_text(render_html(report, history), encoding="utf-8")
    return Sheet(report, history, summaries(report.engine, history), page, fills)


def _all(sheet: Sheet) -> list[Summary]:
    return [s for level in ("portfolio", "account", "strategy") for s in sheet.levels[level]]


def test_every_series_has_a_summary(sheet: Sheet) -> None:
    rows = sheet.report.levels()
    assert [s.name for s in sheet.levels["account"]] == [r["account"] for r in rows["account"]]
    assert [s.name for s in sheet.levels["strategy"]] == [r["strategy"] for r in rows["strategy"]]
    assert len(sheet.levels["portfolio"]) == 1 and len(sheet.levels["strategy"]) == 31


def _engine_row(sheet: Sheet, series: Series) -> dict[str, Any]:
    return sheet.report.engine.row(series)


def test_ratios_and_drawdown_are_the_engines(sheet: Sheet) -> None:
    """Sharpe, Sortino and max drawdown are the engine rows'; the daily returns reproduce them independently."""
    checked = 0
    for summary in _all(sheet):
        row = _engine_row(sheet, summary.series)
        assert summary.row == row
        r = summary.returns.values
        assert r.sum() * summary.returns.capital == pytest.approx(row["equity"], rel=1e-9, abs=1e-6)
        if row["sharpe"] is not None:
            assert r.mean() / r.std(ddof=1) * math.sqrt(252) == pytest.approx(row["sharpe"], rel=1e-7)
            downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
            assert r.mean() / downside * math.sqrt(252) == pytest.approx(row["sortino"], rel=1e-7)
            checked += 1
        drawdowns = sheet.history.paths[summary.series.key].drawdowns
        deepest = max((d.deepest for d in drawdowns.all()), default=0.0)
        if summary.series.level == "portfolio":  # tracked event by event: exactly the engine's
            assert drawdowns.max_depth() == pytest.approx(row["max_drawdown"], rel=1e-9, abs=1e-6)
            assert deepest == pytest.approx(row["max_drawdown_pct"], rel=1e-9)
        else:  # sampled hourly: never deeper than the engine's, and most of it
            assert 0.5 * row["max_drawdown"] <= drawdowns.max_depth() <= row["max_drawdown"] + 1e-6
            assert deepest <= row["max_drawdown_pct"] + 1e-12
        assert summary.max_drawdown_pct == row["max_drawdown_pct"]
    assert checked >= 30  # not vacuous: the sample is long enough for Sharpe almost everywhere


def test_distribution_figures_match_an_independent_computation(sheet: Sheet) -> None:
    """CAGR, volatility, skew, kurtosis, VaR, CVaR, best/worst day against pandas and the quantstats formulas."""
    for summary in _all(sheet):
        r = pd.Series(summary.returns.values)
        years = len(r) / 252
        nav_growth = (summary.returns.capital + summary.row["equity"]) / summary.returns.capital
        assert summary.cagr == pytest.approx(nav_growth ** (1 / years) - 1, rel=1e-9)
        assert summary.volatility == pytest.approx(r.std() * math.sqrt(252), rel=1e-9)
        assert summary.skew == pytest.approx(r.skew(), rel=1e-6)
        assert summary.kurtosis == pytest.approx(r.kurt(), rel=1e-6)
        var = r.mean() + Z_05 * r.std()
        assert summary.var == pytest.approx(var, rel=1e-9)
        assert summary.cvar == pytest.approx(r[r < var].mean() if (r < var).any() else var, rel=1e-9)
        assert (summary.best, summary.worst) == (r.max(), r.min())
        assert summary.exposure == pytest.approx((r != 0).mean())
        assert summary.win_days == pytest.approx((r > 0).sum() / (r != 0).sum())
        assert summary.tail_ratio == pytest.approx(abs(r.quantile(0.95) / r.quantile(0.05)), rel=1e-9)
        assert summary.gain_to_pain == pytest.approx(r.sum() / -r[r < 0].sum(), rel=1e-9)
        dates = pd.to_datetime(np.array(summary.returns.days) * 86_400, unit="s")
        months = r.groupby([dates.year, dates.month]).sum()
        assert (summary.best_month, summary.worst_month) == pytest.approx((months.max(), months.min()), rel=1e-9)
        runs = [len(list(g)) for up, g in itertools.groupby(r > 0) if up]
        assert summary.win_streak == max(runs, default=0)


def _metric_cells(page: str, label: str) -> list[str]:
    match = re.search(rf"<tr><td>{re.escape(label)}</td>((?:<td>[^<]*</td>)+)</tr>", page)
    assert match, label
    return re.findall(r"<td>([^<]*)</td>", match.group(1))


def test_page_prints_the_engine_numbers(sheet: Sheet) -> None:
    page = sheet.page.read_text()
    columns = [sheet.levels["portfolio"][0], *sheet.levels["account"]]
    sharpe, sortino = _metric_cells(page, "Sharpe"), _metric_cells(page, "Sortino")
    drawdown = _metric_cells(page, "Max drawdown")
    for index, summary in enumerate(columns):
        assert summary.row["sharpe"] is not None and summary.row["sortino"] is not None
        assert sharpe[index] == f"{summary.row['sharpe']:,.2f}"
        assert sortino[index] == f"{summary.row['sortino']:,.2f}"
        assert drawdown[index].endswith(f"({summary.row['max_drawdown']:,.0f})")
        assert summary.max_drawdown_pct is not None
        assert drawdown[index].startswith(f"{100 * summary.max_drawdown_pct:,.2f}%")
    portfolio = columns[0]
    assert portfolio.cagr is not None
    assert f"<tr><td>CAGR</td><td>{100 * portfolio.cagr:,.2f}%</td>" in page
    assert page.count("<tr><td>1</td>") >= 1 + 35  # worst-drawdown tables: portfolio, accounts, strategies
    assert "<th>Jan</th>" in page and "Capital base" in page and "trading days" in page
    assert "<script" not in page and not re.search(r"""(src|href)=["']?https?://""", page)  # self-contained


def test_slippage_cost_counts_only_fills_with_an_arrival_price(sheet: Sheet) -> None:
    """Σ over fills with an arrival price of slippage bps × notional / 10⁴ (from the file); portfolio = Σ strategies."""
    cost: dict[str, float] = {}
    for line in sheet.fills.read_text().splitlines():
        fill = json.loads(line)
        cost.setdefault(fill["strategy"], 0.0)
        if "arrival_price" in fill:
            direction = 1.0 if fill["side"] == "buy" else -1.0
            bps = direction * (fill["price"] - fill["arrival_price"]) / fill["arrival_price"] * 10_000.0
            cost[fill["strategy"]] += bps * fill["qty"] * fill["price"] * fill.get("multiplier", 1.0) / 10_000.0
    assert sheet.report.rejected == 0 and sheet.report.duplicates == 0  # every line of the file is in the engine
    strategies = {s.name: s.slippage_cost for s in sheet.levels["strategy"]}
    assert strategies == pytest.approx(cost, rel=1e-9, abs=1e-9)
    portfolio = sheet.levels["portfolio"][0]
    assert portfolio.slippage_cost == pytest.approx(sum(cost.values()), rel=1e-9)
    assert portfolio.slippage_cost == pytest.approx(sum(v for v in strategies.values() if v is not None), rel=1e-9)
    # the old figure (average bps × all volume) is about 7× this: only every 7th fill has an arrival price
    assert portfolio.row["slippage_bps_avg"] * portfolio.row["volume"] / 1e4 != pytest.approx(portfolio.slippage_cost)


def test_slippage_cost_by_hand(tmp_path: Path) -> None:
    """Eight fills, four with an arrival price 1 bp better than the fill: cost = 1 bp of those four's notional."""
    records = []
    for i in range(8):
        side, price, qty = ("buy", "sell")[i % 2], 100.0 + i, 10.0 * (i + 1)
        record: dict[str, Any] = {
            "ts": 1_700_000_000 * 10**9 + i * 60 * 10**9,
            "account": "ACC01",
            "strategy": f"strat_0{i % 4 + 1}",
            "symbol": "SYM",
            "side": side,
            "qty": qty,
            "price": price,
            "fill_id": f"F{i}",
        }
        if i < 4:  # a buy above, a sell below the arrival price: 1 bp cost either way
            record["arrival_price"] = price / (1 + 1e-4) if side == "buy" else price / (1 - 1e-4)
        records.append(record)
    fills = tmp_path / "fills.jsonl"
    fills.write_text("".join(json.dumps(r) + "\n" for r in records))
    settings = Settings()
    history = history_for(settings)
    report = build_report(settings, [str(fills)], dead_letter=tmp_path / "dead.jsonl", observers=[history])
    levels = summaries(report.engine, history)
    expected = {f"strat_0{i + 1}": 1e-4 * records[i]["qty"] * records[i]["price"] for i in range(4)}
    assert {s.name: s.slippage_cost for s in levels["strategy"]} == pytest.approx(expected, rel=1e-6)
    assert levels["portfolio"][0].slippage_cost == pytest.approx(sum(expected.values()), rel=1e-6)


def test_percent_ticks_are_distinct_and_one_for_a_flat_series() -> None:
    figure, axis = plt.subplots()
    _percent_ticks(axis, np.zeros(10))
    assert [t.get_text() for t in axis.get_yticklabels()] == ["0.00%"]
    _percent_ticks(axis, np.array([-0.0004, 0.0, 0.0003]))
    labels = [t.get_text() for t in axis.get_yticklabels()]
    assert len(labels) >= 2 and len(set(labels)) == len(labels) and "-0.0000%" not in labels
    plt.close(figure)


def test_applied_changes_come_from_the_audit_log(sheet: Sheet, tmp_path: Path) -> None:
    """Applied changes and rollbacks inside the period are on the timeline and in the table; the rest is not."""
    portfolio = sheet.levels["portfolio"][0]
    middle = (portfolio.start_ns + portfolio.end_ns) // 2 // 10**6 * 10**6  # the audit log keeps milliseconds
    audit = AuditLog(tmp_path / "changes.jsonl")
    for action, ts in (("apply", middle), ("dry-run", middle), ("rollback", middle + 10**9), ("apply", 10**9)):
        audit.append(ChangeRecord("strat_01", "ACC01", "size", 1.0, 0.5, action, "rule", "why", time=iso_time(ts)))
    changes = History(audit=audit.path).changes(portfolio.start_ns, portfolio.end_ns)
    assert changes == [
        Change(middle, "apply strat_01/ACC01 size"),
        Change(middle + 10**9, "rollback strat_01/ACC01 size"),
    ]
    assert "applied changes" in timeline_plot(sheet.history.events, changes, portfolio.start_ns, portfolio.end_ns)
    assert "<td>rollback strat_01/ACC01 size</td>" in alerts_table(sheet.history, changes)


def test_cli_writes_the_page_and_explains_missing_ratios(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three days of fills through `stratmon report --html`: Sharpe and Sortino are n/a with the reason."""
    for name in [k for k in os.environ if k.startswith("STRATMON_")]:
        monkeypatch.delenv(name)
    fills = tmp_path / "fills.jsonl"
    write_jsonl(str(fills), synthetic_fills(300, seed=2, accounts=2, strategies=3, step_ns=900 * 10**9))
    page = tmp_path / "short.html"
    status = main(["report", str(fills), "--html", str(page), "--dead-letter", str(tmp_path / "dead.jsonl")])
    assert status == 0 and f"wrote {page}" in capsys.readouterr().err
    text = page.read_text()
    min_days = Settings().metrics.min_days
    assert _metric_cells(text, "Sharpe")[0] == f"n/a (fewer than {min_days} days)"
    assert _metric_cells(text, "Sortino")[0] == f"n/a (fewer than {min_days} days)"
    held_back = f"n/a (fewer than {min_days} days)"
    for label in ("CAGR", "Volatility (ann.)", "Calmar", "Recovery factor", "Tail ratio (95/5)", "Gain/pain ratio"):
        cells = _metric_cells(text, label)
        assert cells and set(cells) == {held_back}, (label, cells)
    assert "Not enough history for a rolling window" in text
    assert text.count("<svg") == FIGURES
    # no placeholder or epoch leaks into the page, and no axis repeats a tick label
    assert not re.search(r"\b(None|nan|NaN|inf|1970)\b", text), re.search(
        r".{60}\b(None|nan|NaN|inf|1970)\b.{60}", text
    )
    for svg in re.findall(r"<svg.*?</svg>", text, flags=re.S):
        for axis in ("xtick", "ytick"):
            labels = re.findall(rf"<g id=\"{axis}_\d+\">.*?<text[^>]*>([^<]*)</text>", svg, flags=re.S)
            assert len(labels) == len(set(labels)), (axis, labels)


class DevTools:
    """Chromium over --remote-debugging-pipe (the DevTools protocol: NUL-separated JSON on fds 3 and 4)."""

    def __init__(self, chromium: str) -> None:
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()

        def wire() -> None:
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe"]
        self.process = subprocess.Popen(
            [chromium, *flags, "about:blank"],
            preexec_fn=wire,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next = 0
        self.session: str | None = None

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    assert "error" not in reply, reply
                    return dict(reply["result"])
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no DevTools answer to {method} in {timeout} s"
            chunk = os.read(self._from_browser, 1 << 20)
            assert chunk, "chromium exited"
            self._buffer += chunk

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"]["value"]

    def open(self, url: str, width: int) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while self.evaluate("document.readyState") != "complete":
            assert time.monotonic() < deadline, "page did not load"
            time.sleep(0.05)

    def close(self) -> None:
        self.session = None
        with contextlib.suppress(AssertionError, OSError):  # already gone: nothing to close
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture
def browser() -> Iterator[DevTools]:
    assert CHROMIUM is not None
    tools = DevTools(CHROMIUM)
    try:
        yield tools
    finally:
        tools.close()


# Each plot's box in page coordinates, its visibility, and whether the plot itself is what is on screen there.
PLOTS = """JSON.stringify([...document.querySelectorAll('svg')].map(svg => {
  const box = svg.getBoundingClientRect(), style = getComputedStyle(svg);
  const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return {x: box.left + scrollX, y: box.top + scrollY, w: box.width, h: box.height,
          shown: style.display !== 'none' && style.visibility === 'visible' && style.opacity !== '0',
          onTop: hit !== null && svg.contains(hit), marks: svg.querySelectorAll('path,image,use,text').length};
}))"""


@pytest.mark.skipif(CHROMIUM is None, reason="make test installs Debian's chromium (scripts/ensure-chromium.sh)")
def test_every_plot_is_drawn_and_visible_in_chromium(sheet: Sheet, browser: DevTools) -> None:
    width = 1300
    browser.open(sheet.page.as_uri(), width)
    height = int(browser.evaluate("document.documentElement.scrollHeight"))
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    plots = json.loads(browser.evaluate(PLOTS))
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / "tearsheet.png"
    path.write_bytes(shot)
    print(f"screenshot: {path}")
    pixels = matplotlib.image.imread(path)[..., :3]
    assert pixels.shape[:2] == (height, width)
    assert len(plots) == FIGURES
    firing = [e for e in sheet.history.events if e.state == "firing"]
    for number, plot in enumerate(plots, 1):
        assert plot["shown"] and plot["onTop"], f"plot {number} hidden: {plot}"
        assert plot["w"] > 300 and plot["h"] > 150 and plot["marks"] > 20, f"plot {number} empty: {plot}"
        assert plot["x"] >= 0 and plot["x"] + plot["w"] <= width + 1, f"plot {number} off screen: {plot}"
        box = pixels[int(plot["y"]) : int(plot["y"] + plot["h"]), int(plot["x"]) : int(plot["x"] + plot["w"])]
        ink = (box < 0.9).any(axis=2).mean()
        coloured = int((np.ptp(box, axis=2) > 0.15).sum())
        assert ink > 0.02, f"plot {number} not drawn on screen (ink {ink:.3f})"
        if number < FIGURES:  # lines, bars and heatmaps: in colour over at least 0.5% of the plot
            assert coloured > box.shape[0] * box.shape[1] // 200, f"plot {number} in no colour ({coloured} px)"
        else:  # the timeline: a coloured dot per alert fired
            assert coloured >= 20 or not firing, f"timeline without its alerts ({coloured} px)"
