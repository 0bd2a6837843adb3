"""Dashboards as code (grafana-foundation-sdk, Grafana 11.6 build) with a small InfluxQL query type.

Six dashboards: portfolio overview, account, strategy, fills explorer, alerts & optimization,
collector health. All queries are raw InfluxQL against the fixed datasource uid; variables come
from SHOW TAG VALUES and are matched with =~ /^$var$/. Every query is executed in the tests.
"""

from __future__ import annotations

import json
from typing import Any, Self

from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.common import TableSortByFieldState
from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row, ThresholdsConfig, TimePicker
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import GraphDrawStyle, VisibilityMode

from collector.grafana.names import DASHBOARDS, DATASOURCE_TYPE, DATASOURCE_UID

DS = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
REFRESH_CHOICES = ["1s", "5s", "10s", "30s", "1m", "5m"]


class InfluxQLQuery(cogvariants.Dataquery):
    """The InfluxQL target Grafana's InfluxDB datasource reads (the SDK ships none)."""

    def __init__(self, query: str, ref_id: str = "A", result_format: str = "time_series", alias: str = "") -> None:
        self.query, self.ref_id, self.result_format, self.alias = query, ref_id, result_format, alias

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias:
            data["alias"] = self.alias
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(data.get("query", ""), data.get("refId", "A"), data.get("resultFormat", "time_series"))


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    def __init__(self, query: str, ref_id: str = "A", result_format: str = "time_series", alias: str = "") -> None:
        self._query = InfluxQLQuery(query, ref_id, result_format, alias)

    def build(self) -> InfluxQLQuery:
        return self._query


def _match(variable: str) -> str:
    return f'"{variable}" =~ /^${variable}$/'


def _thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def series(title: str, unit: str, *queries: str, span: int = 12, height: int = 8, alias: str = "") -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(DS).unit(unit).span(span).height(height).line_width(1)
    for i, query in enumerate(queries):
        panel = panel.with_target(InfluxQL(query, chr(ord("A") + i), alias=alias))
    return panel.fill_opacity(8).show_points(VisibilityMode.NEVER)


def single(title: str, unit: str, query: str, span: int = 4, thresholds: ThresholdsConfig | None = None) -> stat.Panel:
    panel = stat.Panel().title(title).datasource(DS).unit(unit).span(span).height(4).with_target(InfluxQL(query))
    return panel.thresholds(thresholds) if thresholds is not None else panel


def grid(title: str, query: str, span: int = 24, height: int = 10, sort: str | None = None) -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .datasource(DS)
        .span(span)
        .height(height)
        .with_target(InfluxQL(query, result_format="table"))
        .filterable(True)
    )
    if sort:
        panel = panel.sort_by([TableSortByFieldState().display_name(sort).desc(True)])
    return panel


def tag_variable(name: str, measurement: str, where: str = "", label: str | None = None) -> QueryVariable:
    condition = f" WHERE {where}" if where else ""
    return (
        QueryVariable(name)
        .label(label or name.capitalize())
        .datasource(DS)
        .query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{name}"{condition}')
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def _base(title: str, key: str, tags: list[str]) -> Dashboard:
    return (
        Dashboard(title)
        .uid(DASHBOARDS[key])
        .tags(["stratmon", *tags])
        .refresh("5s")
        .time("now-6h", "now")
        .timezone("utc")
        .timepicker(TimePicker().refresh_intervals(REFRESH_CHOICES))
        .editable()
    )


PERF = '"perf"'


def perf_where(level: str, *filters: str) -> str:
    return " AND ".join([f"\"level\" = '{level}'", *filters, "$timeFilter"])


def portfolio() -> Dashboard:
    where = perf_where("portfolio")
    ranking = (
        'SELECT last("equity") AS "equity", last("drawdown") AS "drawdown", last("sharpe") AS "sharpe", '
        'last("win_rate") AS "win rate", last("profit_factor") AS "profit factor", last("trades") AS "trades", '
        f'last("loss_streak") AS "loss streak" FROM {PERF} WHERE {perf_where("strategy")} GROUP BY "strategy"'
    )
    firing = (
        'SELECT last("active") AS "active", last("value") AS "value", last("message") AS "message" '
        'FROM "alerts" WHERE $timeFilter GROUP BY "rule", "severity", "level", "account", "strategy"'
    )
    money = _thresholds((None, "red"), (0, "green"))
    return (
        _base("stratmon · Portfolio overview", "portfolio", ["portfolio"])
        .refresh("1s")
        .with_row(Row("Now"))
        .with_panel(single("Equity", "currencyUSD", f'SELECT last("equity") FROM {PERF} WHERE {where}', 4, money))
        .with_panel(
            single(
                "Today's PnL",
                "currencyUSD",
                f'SELECT last("equity") - first("equity") FROM {PERF} WHERE {where}',
                4,
                money,
            ).time_from("now/d")
        )
        .with_panel(single("Drawdown", "percentunit", f'SELECT last("drawdown_pct") FROM {PERF} WHERE {where}'))
        .with_panel(single("Sharpe", "none", f'SELECT last("sharpe") FROM {PERF} WHERE {where}'))
        .with_panel(single("Sortino", "none", f'SELECT last("sortino") FROM {PERF} WHERE {where}'))
        .with_panel(single("Win rate", "percentunit", f'SELECT last("win_rate") FROM {PERF} WHERE {where}'))
        .with_panel(single("Gross exposure", "currencyUSD", f'SELECT last("gross_exposure") FROM {PERF} WHERE {where}'))
        .with_panel(single("Net exposure", "currencyUSD", f'SELECT last("net_exposure") FROM {PERF} WHERE {where}'))
        .with_panel(
            single(
                "Fills/s",
                "short",
                # 10 s buckets: two health reports (every 5 s) per rate, whatever the dashboard's range
                'SELECT non_negative_derivative(last("fills_in"), 1s) FROM "collector" WHERE $timeFilter '
                "GROUP BY time(10s) fill(none)",
            )
        )
        .with_panel(single("Trades", "short", f'SELECT last("trades") FROM {PERF} WHERE {where}'))
        .with_panel(single("Max drawdown", "currencyUSD", f'SELECT last("max_drawdown") FROM {PERF} WHERE {where}', 8))
        .with_row(Row("Equity and drawdown"))
        .with_panel(
            series(
                "Portfolio equity",
                "currencyUSD",
                f'SELECT last("equity") AS "equity" FROM {PERF} WHERE {where} '
                "GROUP BY time($__interval) fill(previous)",
            )
        )
        .with_panel(
            series(
                "Portfolio drawdown",
                "currencyUSD",
                f'SELECT last("drawdown") AS "drawdown" FROM {PERF} WHERE {where} '
                "GROUP BY time($__interval) fill(previous)",
            )
        )
        .with_panel(
            series(
                "Equity by account",
                "currencyUSD",
                f'SELECT last("equity") FROM {PERF} WHERE {perf_where("account")} '
                'GROUP BY time($__interval), "account" fill(previous)',
                alias="$tag_account",
                span=24,
            )
        )
        .with_row(Row("Strategies and alerts"))
        .with_panel(grid("Strategies, best to worst", ranking, span=14, height=14, sort="equity"))
        .with_panel(grid("Alerts (active = 1 is firing now)", firing, span=10, height=14, sort="active"))
    )


def account() -> Dashboard:
    where = perf_where("account", _match("account"))
    daily = (
        f'SELECT sum("pnl") AS "pnl" FROM "perf_1d" WHERE "level" = \'account\' AND {_match("account")} '
        'AND $timeFilter GROUP BY time(1d), "account" fill(none)'
    )
    weekly = daily.replace("time(1d)", "time(1w)")
    strategies = (
        'SELECT last("equity") AS "equity", last("drawdown") AS "drawdown", last("trades") AS "trades", '
        'last("win_rate") AS "win rate", last("slippage_bps_avg") AS "slippage bps" '
        f'FROM {PERF} WHERE {perf_where("book", _match("account"))} GROUP BY "account", "strategy"'
    )
    return (
        _base("stratmon · Account", "account", ["account"])
        .time("now-7d", "now")
        .with_variable(tag_variable("account", "perf", "\"level\" = 'account'"))
        .with_panel(
            series(
                "Equity · $account",
                "currencyUSD",
                f'SELECT last("equity") FROM {PERF} WHERE {where} GROUP BY time($__interval), "account" fill(previous)',
                alias="$tag_account",
            ).repeat("account")
        )
        .with_panel(
            series(
                "Drawdown",
                "percentunit",
                f'SELECT last("drawdown_pct") FROM {PERF} WHERE {where} '
                'GROUP BY time($__interval), "account" fill(previous)',
                alias="$tag_account",
            )
        )
        .with_panel(
            series(
                "Exposure",
                "currencyUSD",
                f'SELECT last("gross_exposure") AS "gross", last("net_exposure") AS "net" FROM {PERF} WHERE {where} '
                'GROUP BY time($__interval), "account" fill(previous)',
            )
        )
        .with_panel(
            series("Daily PnL (perf_1d)", "currencyUSD", daily, alias="$tag_account").draw_style(GraphDrawStyle.BARS)
        )
        .with_panel(
            series("Weekly PnL", "currencyUSD", weekly, span=12, alias="$tag_account").draw_style(GraphDrawStyle.BARS)
        )
        .with_panel(grid("Strategies in the account", strategies, span=12, height=8, sort="equity"))
    )


def strategy() -> Dashboard:
    where = perf_where("strategy", _match("strategy"))
    books = perf_where("book", _match("strategy"), _match("account"))
    trip_stats = (
        'SELECT last("trades") AS "trades", last("win_rate") AS "win rate", last("profit_factor") AS "profit factor", '
        'last("expectancy") AS "expectancy", last("payoff_ratio") AS "payoff", last("avg_win") AS "avg win", '
        f'last("avg_loss") AS "avg loss", last("loss_streak") AS "loss streak" FROM {PERF} WHERE {books} '
        'GROUP BY "strategy", "account"'
    )
    fills_where = f"{_match('strategy')} AND {_match('account')} AND $timeFilter"
    return (
        _base("stratmon · Strategy", "strategy", ["strategy"])
        .time("now-7d", "now")
        .with_variable(tag_variable("strategy", "perf", "\"level\" = 'strategy'"))
        .with_variable(
            tag_variable("account", "perf", f"\"level\" = 'book' AND {_match('strategy')}")
        )  # chained: the accounts the selected strategies trade in
        .with_panel(
            series(
                "Equity · $strategy",
                "currencyUSD",
                f'SELECT last("equity") FROM {PERF} WHERE {where} '
                'GROUP BY time($__interval), "strategy" fill(previous)',
                alias="$tag_strategy",
            ).repeat("strategy")
        )
        .with_panel(
            series(
                "Drawdown",
                "currencyUSD",
                f'SELECT last("drawdown") FROM {PERF} WHERE {where} '
                'GROUP BY time($__interval), "strategy" fill(previous)',
                alias="$tag_strategy",
            )
        )
        .with_panel(
            series(
                "Equity by account",
                "currencyUSD",
                f'SELECT last("equity") FROM {PERF} WHERE {books} '
                'GROUP BY time($__interval), "strategy", "account" fill(previous)',
                alias="$tag_strategy · $tag_account",
            )
        )
        .with_panel(
            series(
                "Exposure",
                "currencyUSD",
                f'SELECT last("gross_exposure") AS "gross", last("net_exposure") AS "net" FROM {PERF} WHERE {where} '
                "GROUP BY time($__interval) fill(previous)",
            )
        )
        .with_panel(
            series(
                "Slippage (bps, cost > 0)",
                "none",
                f'SELECT mean("slippage_bps") FROM "fills" WHERE {fills_where} '
                'GROUP BY time($__interval), "strategy" fill(none)',
                alias="$tag_strategy",
                span=8,
            )
        )
        .with_panel(
            series(
                "Order-to-fill latency",
                "ms",
                f'SELECT mean("latency_ms") FROM "fills" WHERE {fills_where} '
                'GROUP BY time($__interval), "strategy" fill(none)',
                alias="$tag_strategy",
                span=8,
            )
        )
        .with_panel(
            series(
                "Daily PnL (perf_1d)",
                "currencyUSD",
                f'SELECT sum("pnl") FROM "perf_1d" WHERE "level" = \'strategy\' AND {_match("strategy")} '
                'AND $timeFilter GROUP BY time(1d), "strategy" fill(none)',
                alias="$tag_strategy",
                span=8,
            ).draw_style(GraphDrawStyle.BARS)
        )
        .with_panel(grid("Round-trip statistics per book", trip_stats, height=9, sort="trades"))
    )


def fills() -> Dashboard:
    where = f"{_match('account')} AND {_match('strategy')} AND {_match('symbol')} AND $timeFilter"
    columns = (
        '"account", "strategy", "symbol", "side", "qty", "price", "notional", "fee", "realized_pnl", '
        '"slippage_bps", "latency_ms", "fill_id", "order_id"'
    )
    return (
        _base("stratmon · Fills & round trips", "fills", ["fills"])
        .with_variable(tag_variable("account", "fills"))
        .with_variable(tag_variable("strategy", "fills", _match("account")))
        .with_variable(tag_variable("symbol", "fills", f"{_match('account')} AND {_match('strategy')}"))
        .with_panel(
            series(
                "Fills per interval",
                "short",
                f'SELECT count("qty") FROM "fills" WHERE {where} GROUP BY time($__interval), "strategy" fill(none)',
                alias="$tag_strategy",
                span=12,
                height=7,
            ).draw_style(GraphDrawStyle.BARS)
        )
        .with_panel(
            series(
                "Realized PnL of closing fills",
                "currencyUSD",
                f'SELECT sum("realized_pnl") FROM "fills" WHERE {where} AND "realized_pnl" != 0 '
                'GROUP BY time($__interval), "strategy" fill(none)',
                alias="$tag_strategy",
                span=12,
                height=7,
            ).draw_style(GraphDrawStyle.BARS)
        )
        .with_panel(
            grid(
                "Fills (newest first)",
                f'SELECT {columns} FROM "fills" WHERE {where} ORDER BY time DESC LIMIT 500',
                height=12,
            )
        )
        .with_panel(
            grid(
                "Round-trip closes (fills that realized PnL)",
                f'SELECT {columns} FROM "fills" WHERE {where} AND "realized_pnl" != 0 ORDER BY time DESC LIMIT 500',
                height=12,
            )
        )
    )


def alerts_and_changes() -> Dashboard:
    return (
        _base("stratmon · Alerts & optimization", "alerts", ["alerts", "optimization"])
        .time("now-24h", "now")
        .with_panel(
            statetimeline.Panel()
            .title("Alert timeline (1 = firing)")
            .datasource(DS)
            .span(24)
            .height(10)
            .with_target(
                InfluxQL(
                    'SELECT last("active") FROM "alerts" WHERE $timeFilter '
                    'GROUP BY time($__interval), "rule", "strategy" fill(previous)',
                    alias="$tag_rule · $tag_strategy",
                )
            )
            .thresholds(_thresholds((None, "green"), (1, "red")))
        )
        .with_panel(
            grid(
                "Alert transitions",
                'SELECT "state", "severity", "rule", "level", "account", "strategy", "value", "threshold", "message", '
                '"latency_ms" FROM "alerts" WHERE $timeFilter ORDER BY time DESC LIMIT 500',
                height=10,
            )
        )
        .with_panel(
            grid(
                "Optimization suggestions",
                'SELECT "rule", "risk", "status", "level", "account", "strategy", "param", "old", "new", '
                '"confidence", "rationale" FROM "suggestions" WHERE $timeFilter ORDER BY time DESC LIMIT 500',
                span=12,
                height=10,
            )
        )
        .with_panel(
            grid(
                "Applied changes and rollbacks",
                'SELECT "action", "strategy", "account", "param", "old", "new", "reason", "suggestion_id" '
                'FROM "changes" WHERE $timeFilter ORDER BY time DESC LIMIT 500',
                span=12,
                height=10,
            )
        )
        .with_panel(
            series(
                "Portfolio equity (alerts and changes as annotations)",
                "currencyUSD",
                f'SELECT last("equity") FROM {PERF} WHERE {perf_where("portfolio")} '
                "GROUP BY time($__interval) fill(previous)",
                span=24,
            )
        )
    )


def health() -> Dashboard:
    where = '$timeFilter GROUP BY time($__interval), "instance" fill(none)'

    def counter_rate(field: str) -> str:
        return f'SELECT non_negative_derivative(last("{field}"), 1s) FROM "collector" WHERE {where}'

    def gauge(*fields: str) -> str:
        picked = ", ".join(f'last("{f}") AS "{f}"' for f in fields)
        return f'SELECT {picked} FROM "collector" WHERE {where}'

    return (
        _base("stratmon · Collector health", "health", ["collector"])
        .time("now-1h", "now")
        .with_panel(series("Intake (fills/s)", "short", counter_rate("fills_in"), alias="$tag_instance", span=8))
        .with_panel(series("Rejected (records/s)", "short", counter_rate("fills_rejected"), span=8))
        .with_panel(series("Duplicates (fills/s)", "short", counter_rate("fills_duplicate"), span=8))
        .with_panel(series("Queue depth (batches)", "short", gauge("queue_depth"), span=8))
        .with_panel(series("Lag (worst queue wait)", "ms", gauge("lag_ms"), span=8))
        .with_panel(series("End-to-end latency", "ms", gauge("latency_p50_ms", "latency_p99_ms"), span=8))
        .with_panel(series("Write errors (total)", "short", gauge("write_errors"), span=8))
        .with_panel(series("Spooled points waiting", "short", gauge("spooled_points"), span=8))
        .with_panel(series("Reject rate", "percentunit", gauge("reject_rate"), span=8))
        .with_panel(series("Checkpoint time", "ms", gauge("checkpoint_ms"), span=8))
        .with_panel(
            series("Alerts fired / notifications", "short", gauge("alerts_fired", "notifications_sent"), span=8)
        )
        .with_panel(series("Alert latency p99", "ms", gauge("alert_latency_p99_ms"), span=8))
    )


ANNOTATIONS = [
    {
        "name": "Alerts firing",
        "iconColor": "red",
        "query": 'SELECT "message", "rule" FROM "alerts" WHERE "state" = \'firing\' AND $timeFilter',
        "textColumn": "message",
        "tagsColumn": "rule",
    },
    {
        "name": "Applied changes",
        "iconColor": "blue",
        "query": 'SELECT "reason", "param", "action" FROM "changes" WHERE $timeFilter',
        "textColumn": "reason",
        "tagsColumn": "param,action",
    },
]

BUILDERS = {
    "portfolio": portfolio,
    "account": account,
    "strategy": strategy,
    "fills": fills,
    "alerts": alerts_and_changes,
    "health": health,
}


def dashboard_json(key: str) -> dict[str, Any]:
    """One dashboard as Grafana's JSON model, with ids and annotation queries filled in."""
    model: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(BUILDERS[key]().build()))
    for number, panel in enumerate(model.get("panels", []), 1):
        panel["id"] = number
    annotations = model.setdefault("annotations", {}).setdefault("list", [])
    for spec in ANNOTATIONS:
        annotations.append(
            {
                "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
                "enable": True,
                "hide": False,
                "iconColor": spec["iconColor"],
                "name": spec["name"],
                "query": spec["query"],
                "target": {"query": spec["query"], "rawQuery": True, "refId": "Anno"},
                "textColumn": spec["textColumn"],
                "tagsColumn": spec["tagsColumn"],
            }
        )
    return model


def dashboard_files() -> dict[str, str]:
    return {
        f"dashboards/{DASHBOARDS[key]}.json": json.dumps(dashboard_json(key), indent=2, sort_keys=True) + "\n"
        for key in BUILDERS
    }


def panel_ids() -> dict[str, int]:
    """Panel ids by "dashboard key/panel title", for the alert rules' panelId."""
    return {f"{key}/{panel['title']}": panel["id"] for key in BUILDERS for panel in dashboard_json(key)["panels"]}
