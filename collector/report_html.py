"""`stratmon report --html OUT.html`: a self-contained tear sheet (quantstats-like) for the portfolio,
accounts and strategies.

Header (period, capital base, day basis); headline statistics per portfolio and account, and per
strategy; cumulative return with alerts and applied changes; underwater chart in % of peak NAV and
the five worst drawdowns; rolling Sharpe and volatility; the daily-return histogram; monthly
returns; the strategies' correlation matrix, equity, daily PnL and underwater heatmaps; the alert
and change timeline; per account and strategy, monthly returns and worst drawdowns. The numbers
come from collector/tearsheet_summary.py; this module only formats them. No scripts, no network.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from collector.model import NS
from collector.report import Report
from collector.tearsheet_history import Change, History, history_for
from collector.tearsheet_plots import (
    correlation_plot,
    cumulative_plot,
    histogram_plot,
    rolling_plot,
    strategy_days,
    strategy_equity_plot,
    strategy_heatmaps,
    timeline_plot,
    underwater_plot,
)
from collector.tearsheet_stats import monthly_returns
from collector.tearsheet_summary import Summary, summaries

__all__ = ["History", "history_for", "render_html", "write_html"]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DASH = "–"


def _pct(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{100 * value:,.{digits}f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def _money(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}"


def _date(ts_ns: int | None) -> str:
    return DASH if ts_ns is None else datetime.fromtimestamp(ts_ns / NS, UTC).strftime("%Y-%m-%d %H:%M")


class Formatter:
    """Turns a summary's figures into table cells; says why a ratio is missing when the sample is too small."""

    def __init__(self, min_days: int | None, min_trips: int | None) -> None:
        self.min_days, self.min_trips = min_days, min_trips

    def _short(self, s: Summary) -> str | None:
        """Why an annualized figure or a ratio of daily returns is held back: fewer days than the engine's minimum."""
        if self.min_days and len(s.returns.values) < self.min_days:
            return f"n/a (fewer than {self.min_days} days)"
        return None

    def _days_ratio(self, s: Summary, name: str) -> str:
        value = s.row.get(name)
        if value is not None:
            return _num(value)
        return self._short(s) or "n/a"

    def _sampled(self, s: Summary, value: float | None, show: Callable[[float | None], str]) -> str:
        """`value` shown only on the engine's minimum sample of days (as Sharpe is)."""
        return self._short(s) or show(value)

    def _trips_ratio(self, s: Summary, name: str, percent: bool) -> str:
        value = s.row.get(name)
        if value is not None:
            return _pct(value, 1) if percent else _num(value)
        if self.min_trips and s.row["trades"] < self.min_trips:
            return f"n/a (fewer than {self.min_trips} round trips)"
        return "n/a"

    def metrics(self) -> list[tuple[str, Callable[[Summary], str]]]:
        """(label, cell) of every headline statistic, in the quantstats order."""
        return [
            ("Start", lambda s: _date(s.start_ns)),
            ("End", lambda s: _date(s.end_ns)),
            ("Periods (days)", lambda s: str(len(s.returns.values))),
            ("Capital base", lambda s: _money(s.returns.capital)),
            ("NAV", lambda s: _money(s.returns.capital + s.row["equity"])),
            ("Equity (net PnL)", lambda s: _money(s.row["equity"])),
            ("Cumulative return", lambda s: _pct(s.row["return_cum"])),
            ("CAGR", lambda s: self._sampled(s, s.cagr, _pct)),
            ("Volatility (ann.)", lambda s: self._sampled(s, s.volatility, _pct)),
            ("Sharpe", lambda s: self._days_ratio(s, "sharpe")),
            ("Sortino", lambda s: self._days_ratio(s, "sortino")),
            ("Calmar", lambda s: self._sampled(s, s.calmar, _num)),
            ("Max drawdown", lambda s: f"{_pct(s.max_drawdown_pct)} ({_money(s.row['max_drawdown'])})"),
            ("Max drawdown duration (days)", lambda s: _num(s.max_drawdown_days, 1)),
            ("Longest drawdown (days)", lambda s: _num(s.longest_drawdown_days, 1)),
            ("Average drawdown", lambda s: _pct(s.avg_drawdown_pct)),
            ("Average drawdown (days)", lambda s: _num(s.avg_drawdown_days, 1)),
            ("Recovery factor", lambda s: self._sampled(s, s.recovery_factor, _num)),
            ("Skew", lambda s: _num(s.skew)),
            ("Kurtosis (excess)", lambda s: _num(s.kurtosis)),
            ("Daily VaR 95%", lambda s: _pct(s.var)),
            ("Daily CVaR 95%", lambda s: _pct(s.cvar)),
            ("Best day", lambda s: _pct(s.best)),
            ("Worst day", lambda s: _pct(s.worst)),
            ("Best month", lambda s: _pct(s.best_month)),
            ("Worst month", lambda s: _pct(s.worst_month)),
            ("Winning days", lambda s: _pct(s.win_days, 1)),
            ("Most consecutive winning days", lambda s: str(s.win_streak)),
            ("Most consecutive losing days", lambda s: str(s.loss_streak)),
            ("Tail ratio (95/5)", lambda s: self._sampled(s, s.tail_ratio, _num)),
            ("Gain/pain ratio", lambda s: self._sampled(s, s.gain_to_pain, _num)),
            ("Round trips", lambda s: f"{s.row['trades']:,}"),
            ("Win rate", lambda s: self._trips_ratio(s, "win_rate", True)),
            ("Profit factor", lambda s: self._trips_ratio(s, "profit_factor", False)),
            ("Payoff ratio", lambda s: self._trips_ratio(s, "payoff_ratio", False)),
            ("Expectancy (per round trip)", lambda s: self._trips_ratio(s, "expectancy", False)),
            ("Exposure (days at risk)", lambda s: _pct(s.exposure, 0)),
            ("Gross exposure now", lambda s: _money(s.row["gross_exposure"])),
            ("Turnover (× capital a year)", lambda s: self._sampled(s, s.turnover, lambda v: _num(v, 1))),
            ("Fees", lambda s: f"{_money(s.row['fees'])} ({_pct(s.row['fees'] / s.returns.capital, 3)})"),
            ("Slippage (bps, cost > 0)", lambda s: _num(s.row["slippage_bps_avg"])),
            ("Slippage cost", lambda s: _money(s.slippage_cost)),
        ]


def _cells(tag: str, values: list[str], css: str = "") -> str:
    attr = f" class='{css}'" if css else ""
    return "<tr>" + "".join(f"<{tag}{attr}>{html.escape(v)}</{tag}>" for v in values) + "</tr>"


def metrics_table(columns: list[Summary], formatter: Formatter) -> str:
    """Statistics as rows, series as columns (the quantstats key-metrics layout)."""
    head = _cells("th", ["", *(s.name for s in columns)])
    body = "".join(_cells("td", [label, *(cell(s) for s in columns)]) for label, cell in formatter.metrics())
    return f"<table class='metrics'><thead>{head}</thead><tbody>{body}</tbody></table>"


STRATEGY_COLUMNS = (
    "Equity (net PnL)",
    "Cumulative return",
    "CAGR",
    "Volatility (ann.)",
    "Sharpe",
    "Sortino",
    "Calmar",
    "Max drawdown",
    "Skew",
    "Daily VaR 95%",
    "Best day",
    "Worst day",
    "Round trips",
    "Win rate",
    "Profit factor",
    "Exposure (days at risk)",
    "Turnover (× capital a year)",
    "Fees",
    "Slippage cost",
)


def strategy_table(strategies: list[Summary], formatter: Formatter) -> str:
    """One row per strategy, ranked by equity."""
    cells = dict(formatter.metrics())
    ranked = sorted(strategies, key=lambda s: s.row["equity"], reverse=True)
    head = _cells("th", ["strategy", *STRATEGY_COLUMNS])
    body = "".join(_cells("td", [s.name, *(cells[c](s) for c in STRATEGY_COLUMNS)]) for s in ranked)
    return f"<div class='wide'><table class='strategies'><thead>{head}</thead><tbody>{body}</tbody></table></div>"


def _shade(value: float, limit: float) -> str:
    """Green for gains, red for losses, stronger with size (the quantstats monthly heatmap colours)."""
    strength = min(1.0, abs(value) / limit) if limit > 0 else 0.0
    color = "44,160,44" if value >= 0 else "214,39,40"
    return f"background:rgba({color},{0.12 + 0.6 * strength:.2f})"


def monthly_table(summary: Summary) -> str:
    """Years × months of Σ daily returns (% of capital), with the year's total."""
    months = monthly_returns(summary.returns.days, summary.returns.values)
    limit = max((abs(v) for year in months.values() for v in year.values()), default=0.0)
    head = _cells("th", ["year", *MONTHS, "year"])
    rows = []
    for year in sorted(months):
        cells = [f"<td>{year}</td>"]
        for month in range(1, 13):
            value = months[year].get(month)
            cells.append("<td></td>" if value is None else f"<td style='{_shade(value, limit)}'>{_pct(value)}</td>")
        cells.append(f"<td><b>{_pct(sum(months[year].values()))}</b></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='monthly'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def drawdown_table(summary: Summary) -> str:
    """The five worst drawdowns: start, trough, recovery, depth (% of peak NAV and currency), duration."""
    head = _cells("th", ["#", "start", "trough", "recovery", "depth", "depth (currency)", "days"])
    rows = [
        _cells(
            "td",
            [
                str(rank),
                _date(d.start_ns),
                _date(d.trough_ns),
                _date(d.end_ns) if d.end_ns is not None else "not recovered",
                _pct(d.deepest),
                _money(d.depth),
                _num(d.days(summary.end_ns), 1),
            ],
        )
        for rank, d in enumerate(summary.drawdowns, 1)
    ]
    if not rows:
        rows = ["<tr><td colspan='7'>no drawdown</td></tr>"]
    return f"<table class='drawdowns'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def alerts_table(history: History, changes: list[Change]) -> str:
    """How often each rule fired, and the applied changes."""
    fired = Counter((e.rule.name, e.rule.severity) for e in history.events if e.state == "firing")
    rows = [_cells("td", [name, severity, str(count)]) for (name, severity), count in fired.most_common()]
    rows += [_cells("td", [change.label, "change", _date(change.ts_ns)]) for change in changes]
    if not rows:
        rows = ["<tr><td colspan='3'>no alerts fired and no changes applied</td></tr>"]
    head = _cells("th", ["rule / change", "severity", "fired / when"])
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _details(summary: Summary, level: str) -> str:
    """A collapsed block per account or strategy: its period, capital, monthly returns and worst drawdowns."""
    r = summary.returns
    return (
        f"<details><summary>{html.escape(level)} {html.escape(summary.name)}: "
        f"return {_pct(summary.row['return_cum'])}, max drawdown {_pct(summary.max_drawdown_pct)}</summary>"
        f"<p>{_date(summary.start_ns)} → {_date(summary.end_ns)} UTC, {len(r.values)} days, "
        f"capital base {_money(r.capital)}</p>"
        f"<h4>Monthly returns</h4>{monthly_table(summary)}"
        f"<h4>Worst drawdowns (from hourly samples)</h4>{drawdown_table(summary)}</details>"
    )


CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1280px}h1{font-size:20px}
h2{font-size:16px;margin-top:30px;border-bottom:1px solid #ccc}h3{font-size:14px}h4{font-size:12px;margin:8px 0 2px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{padding:3px 8px;border-bottom:1px solid #e4e4e4;
text-align:right;white-space:nowrap}td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
figure{margin:8px 0}svg{max-width:100%;height:auto}.wide{overflow-x:auto}.header td{text-align:left}
details{margin:4px 0;font-size:12px}summary{cursor:pointer}"""


def _figure(svg: str) -> str:
    return f"<figure>{svg}</figure>"


def render_html(report: Report, history: History) -> str:
    """The whole page."""
    engine = report.engine
    levels = summaries(engine, history)
    if not levels["portfolio"]:
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>stratmon tear sheet</title></head>"
            "<body><h1>stratmon tear sheet</h1><p>No fills were accepted: nothing to show.</p></body></html>\n"
        )
    portfolio = levels["portfolio"][0]
    accounts, strategies = levels["account"], levels["strategy"]
    formatter = Formatter(history.min_days, history.min_round_trips)
    changes = history.changes(portfolio.start_ns, portfolio.end_ns)
    paths = history.paths
    basis = engine.day_basis
    header = [
        ("Period", f"{_date(portfolio.start_ns)} → {_date(portfolio.end_ns)} UTC"),
        ("Periods", f"{len(portfolio.returns.values)} {basis} days ({portfolio.returns.periods_per_year} a year)"),
        ("Capital base", f"{_money(portfolio.returns.capital)} ({len(accounts)} accounts)"),
        (
            "Day basis",
            f"{basis}: returns = daily change of equity / capital base, √{portfolio.returns.periods_per_year}",
        ),
        ("Fills", f"{report.accepted:,} accepted, {report.rejected:,} rejected, {report.duplicates:,} duplicates"),
        ("Strategies", f"{len(strategies)}"),
        ("Generated", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    header_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in header)
    days, grid = strategy_days(strategies, paths)
    pnl_heatmap, underwater_heatmap = strategy_heatmaps(strategies, days, grid)
    sections = [
        ("Key metrics: portfolio and accounts", metrics_table([portfolio, *accounts], formatter)),
        ("Cumulative return", _figure(cumulative_plot(portfolio, accounts, paths, history.events, changes))),
        ("Drawdowns", _figure(underwater_plot(portfolio, paths[portfolio.series.key])) + drawdown_table(portfolio)),
        ("Monthly returns (portfolio, % of capital)", monthly_table(portfolio)),
        ("Rolling Sharpe and volatility", _figure(rolling_plot([portfolio, *accounts]))),
        ("Daily returns", _figure(histogram_plot(portfolio))),
        ("Strategies", strategy_table(strategies, formatter)),
        ("Strategy correlation", _figure(correlation_plot(strategies, portfolio.returns.days))),
        ("Strategy equity", _figure(strategy_equity_plot(strategies, days, grid))),
        ("Daily PnL by strategy", _figure(pnl_heatmap)),
        ("Underwater by strategy", _figure(underwater_heatmap)),
        (
            "Alerts and applied changes",
            _figure(timeline_plot(history.events, changes, portfolio.start_ns, portfolio.end_ns))
            + alerts_table(history, changes),
        ),
        (
            "Accounts and strategies in detail",
            "".join(_details(s, "account") for s in accounts) + "".join(_details(s, "strategy") for s in strategies),
        ),
    ]
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>stratmon tear sheet</title>"
        f"<style>{CSS}</style></head><body><h1>stratmon tear sheet</h1>"
        f"<table class='header'>{header_rows}</table>{body}</body></html>\n"
    )


def write_html(path: Path, report: Report, history: History) -> None:
    path.write_text(render_html(report, history), encoding="utf-8")
