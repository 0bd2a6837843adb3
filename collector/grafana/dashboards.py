"""Dashboards as code (grafana-foundation-sdk, Grafana 11.6 build) with a small InfluxQL query type.

Six dashboards: portfolio overview, account, strategy, fills explorer, alerts & optimization,
collector health. All queries are raw InfluxQL against the fixed datasource uid; variables come
from SHOW TAG VALUES and are matched with =~ /^$var$/. Every query is executed in the tests.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Self

from grafana_foundation_sdk.builders import heatmap, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, TableSortByFieldState
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    FieldColor,
    QueryVariable,
    Row,
    ThresholdsConfig,
    TimePicker,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import GraphDrawStyle, GraphThresholdsStyleMode, VisibilityMode

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


MONEY = _thresholds((None, "red"), (0, "green"))
# drawdown is plotted below zero (−drawdown_pct): amber past 1 %, red past 2 % of capital
DRAWDOWN = _thresholds((None, "red"), (-0.02, "orange"), (-0.01, "green"))
DRAWDOWN_STEPS = [
    {"value": None, "color": "green"},
    {"value": 0.01, "color": "orange"},
    {"value": 0.02, "color": "red"},
]
TIME_RANGE = "${__url_time_range}"


def _link(title: str, url: str) -> dict[str, Any]:
    """A data link (Grafana interpolates ${__value.raw}, ${__field.labels.x}, ${__data.fields.x} per cell/series)."""
    return {"title": title, "url": url}


def _property(name: str, value: Any) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=name, value=value)


def series(title: str, unit: str, *queries: str, span: int = 12, height: int = 8, alias: str = "") -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(DS).unit(unit).span(span).height(height).line_width(1)
    for i, query in enumerate(queries):
        panel = panel.with_target(InfluxQL(query, chr(ord("A") + i), alias=alias))
    return panel.fill_opacity(8).show_points(VisibilityMode.NEVER)


def drawdown_series(title: str, where: str, tags: tuple[str, ...] = (), span: int = 12) -> timeseries.Panel:
    """Drawdown in % of capital, below zero, with the 1 %/2 % levels drawn as dashed lines."""
    group = "".join(f', "{tag}"' for tag in tags)
    alias = " · ".join(f"$tag_{tag}" for tag in tags) or "drawdown"
    return (
        series(
            title,
            "percentunit",
            f'SELECT last("drawdown_pct") * -1 AS "drawdown" FROM {PERF} WHERE {where} '
            f"GROUP BY time($__interval){group} fill(previous)",
            alias=alias,
            span=span,
        )
        .max(0)
        .decimals(2)
        .thresholds(DRAWDOWN)
        .thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED))
    )


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
        .override_by_name("Time", [_property("custom.hidden", True)])  # last() answers carry a meaningless time
    )
    if sort:
        panel = panel.sort_by([TableSortByFieldState().display_name(sort).desc(True)])
    return panel


def metrics_table(
    title: str, query: str, trend: str, link: dict[str, Any], column: str, span: int, height: int
) -> table.Panel:
    """A ranking of series: units and decimals per column, PnL/return/drawdown coloured, `column` links on,
    and a sparkline of each row's equity (`trend`: one series per row, turned into a cell by the
    timeSeriesTable transformation and merged into the table on the shared tags)."""
    coloured = {"type": "color-text"}
    return (
        grid(title, query, span=span, height=height, sort="return")
        .with_target(InfluxQL(trend, "B"))
        .with_transformation(dm.DataTransformerConfig(id_val="timeSeriesTable", options={}))
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .override_by_field_type(
            "frame", [_property("custom.cellOptions", {"type": "sparkline"}), _property("displayName", "equity")]
        )
        .override_by_name(column, [_property("links", [link])])
        .override_by_name(
            "PnL",
            [_property("unit", "currencyUSD"), _property("decimals", 0), _property("custom.cellOptions", coloured)],
        )
        .override_by_name(
            "return",
            [_property("unit", "percentunit"), _property("decimals", 2), _property("custom.cellOptions", coloured)],
        )
        .override_by_name(
            "drawdown",
            [
                _property("unit", "percentunit"),
                _property("decimals", 2),
                _property("thresholds", {"mode": "absolute", "steps": DRAWDOWN_STEPS}),
                _property("color", {"mode": "thresholds"}),
                _property("custom.cellOptions", {"type": "color-background", "mode": "basic"}),
            ],
        )
        # of the peak NAV, since the first fill
        .override_by_name("max drawdown", [_property("unit", "percentunit"), _property("decimals", 2)])
        .override_by_name("NAV", [_property("unit", "currencyUSD"), _property("decimals", 0)])
        .override_by_name("win rate", [_property("unit", "percentunit"), _property("decimals", 1)])
        .override_by_name("Sharpe", [_property("decimals", 2)])
        .override_by_name("profit factor", [_property("decimals", 2)])
        .thresholds(MONEY)
        .color_scheme(FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )


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
    # every dashboard links to the others, carrying the time range and the selected account/strategy over
    return (
        Dashboard(title)
        .uid(DASHBOARDS[key])
        .tags(["stratmon", *tags])
        .refresh("5s")
        .time("now-6h", "now")
        .timezone("utc")
        .timepicker(TimePicker().refresh_intervals(REFRESH_CHOICES))
        .editable()
        .link(
            DashboardLink("stratmon")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["stratmon"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


PERF = '"perf"'


def perf_where(level: str, *filters: str) -> str:
    return " AND ".join([f"\"level\" = '{level}'", *filters, "$timeFilter"])


def today_pnl(where: str) -> str:
    """Equity now minus the last equity before today (UTC): daily buckets over the past week, carried over
    empty days, and the change of the newest one — so the move from yesterday's close counts too."""
    return f'SELECT difference(last("equity")) FROM {PERF} WHERE {where} GROUP BY time(1d) fill(previous)'


def strategy_url(strategy: str, account: str | None = None) -> str:
    extra = f"&var-account={account}" if account else ""
    return f"/d/{DASHBOARDS['strategy']}?var-strategy={strategy}{extra}&{TIME_RANGE}"


def portfolio() -> Dashboard:
    where = perf_where("portfolio")
    ranking = (
        'SELECT last("equity") AS "PnL", last("return_cum") AS "return", last("drawdown_pct") AS "drawdown", '
        'last("max_drawdown_pct") AS "max drawdown", last("nav") AS "NAV", last("sharpe") AS "Sharpe", '
        'last("win_rate") AS "win rate", last("profit_factor") AS "profit factor", '
        f'last("trades") AS "trades", last("loss_streak") AS "loss streak" FROM {PERF} '
        f'WHERE {perf_where("strategy")} GROUP BY "strategy"'
    )
    firing = (
        'SELECT last("active") AS "active", last("value") AS "value", last("message") AS "message" '
        'FROM "alerts" WHERE $timeFilter GROUP BY "rule", "severity", "level", "account", "strategy"'
    )
    return (
        _base("stratmon · Portfolio overview", "portfolio", ["portfolio"])
        .with_row(Row("Now"))
        .with_panel(single("NAV", "currencyUSD", f'SELECT last("nav") FROM {PERF} WHERE {where}', 4).decimals(0))
        .with_panel(single("PnL (equity)", "currencyUSD", f'SELECT last("equity") FROM {PERF} WHERE {where}', 4, MONEY))
        .with_panel(single("Today's PnL", "currencyUSD", today_pnl(where), 4, MONEY).time_from("7d"))
        .with_panel(
            single(
                "Drawdown", "percentunit", f'SELECT last("drawdown_pct") * -1 FROM {PERF} WHERE {where}', 4, DRAWDOWN
            ).decimals(2)
        )
        .with_panel(single("Sharpe", "none", f'SELECT last("sharpe") FROM {PERF} WHERE {where}').decimals(2))
        .with_panel(single("Sortino", "none", f'SELECT last("sortino") FROM {PERF} WHERE {where}').decimals(2))
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
        .with_panel(
            single(
                "Worst drawdown in range",
                "percentunit",
                f'SELECT max("drawdown_pct") * -1 FROM {PERF} WHERE {where}',
                4,
                DRAWDOWN,
            ).decimals(2)
        )
        .with_row(Row("Equity and drawdown"))
        .with_panel(
            series(
                "Portfolio equity",
                "currencyUSD",
                f'SELECT last("equity") AS "equity" FROM {PERF} WHERE {where} '
                "GROUP BY time($__interval) fill(previous)",
            )
        )
        .with_panel(drawdown_series("Portfolio drawdown", where))
        .with_panel(
            series(
                "Equity by account",
                "currencyUSD",
                f'SELECT last("equity") FROM {PERF} WHERE {perf_where("account")} '
                'GROUP BY time($__interval), "account" fill(previous)',
                alias="$tag_account",
                span=24,
            ).data_links(
                [
                    DashboardLink("Account ${__field.labels.account}").url(
                        f"/d/{DASHBOARDS['account']}?var-account=${{__field.labels.account}}&{TIME_RANGE}"
                    )
                ]
            )
        )
        .with_row(Row("Strategies and alerts"))
        .with_panel(
            metrics_table(
                "Strategies, best to worst (click a strategy)",
                ranking,
                f'SELECT last("equity") FROM {PERF} WHERE {perf_where("strategy")} '
                'GROUP BY time($__interval), "strategy" fill(previous)',
                _link("Strategy ${__value.raw}", strategy_url("${__value.raw}")),
                "strategy",
                span=14,
                height=14,
            )
        )
        .with_panel(
            grid("Alerts (active = 1 is firing now)", firing, span=10, height=14, sort="active").time_from("7d")
        )
        .with_row(Row("Daily PnL by strategy"))
        .with_panel(daily_heatmap())
    )


def daily_heatmap() -> heatmap.Panel:
    """One row per strategy, one column per day (perf_1d), coloured by the day's PnL."""
    return (
        heatmap.Panel()
        .title("Daily PnL per strategy (perf_1d, 30 days)")
        .datasource(DS)
        .span(24)
        .height(12)
        .time_from("30d")
        .with_target(
            InfluxQL(
                'SELECT sum("pnl") FROM "perf_1d" WHERE "level" = \'strategy\' AND $timeFilter '
                'GROUP BY time(1d), "strategy" fill(none)',
                alias="$tag_strategy",
            )
        )
        .calculate(False)
        .unit("currencyUSD")
    )


def account() -> Dashboard:
    where = perf_where("account", _match("account"))
    daily = (
        f'SELECT sum("pnl") AS "pnl" FROM "perf_1d" WHERE "level" = \'account\' AND {_match("account")} '
        'AND $timeFilter GROUP BY time(1d), "account" fill(none)'
    )
    weekly = daily.replace("time(1d)", "time(1w, 4d)")  # epoch weeks start on Thursday; +4d = Monday 00:00 UTC
    strategies = (
        'SELECT last("equity") AS "PnL", last("return_cum") AS "return", last("drawdown_pct") AS "drawdown", '
        'last("max_drawdown_pct") AS "max drawdown", last("trades") AS "trades", last("win_rate") AS "win rate", '
        'last("slippage_bps_avg") AS "slippage bps" '
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
        .with_panel(drawdown_series("Drawdown", where, ("account",)))
        .with_panel(
            series(
                "Exposure",
                "currencyUSD",
                f'SELECT last("gross_exposure") AS "gross", last("net_exposure") AS "net" FROM {PERF} WHERE {where} '
                'GROUP BY time($__interval), "account" fill(previous)',
                alias="$tag_account $col",
            )
        )
        .with_panel(
            series("Daily PnL (perf_1d)", "currencyUSD", daily, alias="$tag_account").draw_style(GraphDrawStyle.BARS)
        )
        .with_panel(
            series("Weekly PnL (Monday to Sunday)", "currencyUSD", weekly, span=12, alias="$tag_account").draw_style(
                GraphDrawStyle.BARS
            )
        )
        .with_panel(
            metrics_table(
                "Strategies in the account (click a strategy)",
                strategies,
                f'SELECT last("equity") FROM {PERF} WHERE {perf_where("book", _match("account"))} '
                'GROUP BY time($__interval), "account", "strategy" fill(previous)',
                _link("Strategy ${__value.raw}", strategy_url("${__value.raw}", "${__data.fields.account}")),
                "strategy",
                span=12,
                height=8,
            )
        )
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
    fills_url = f"/d/{DASHBOARDS['fills']}?var-strategy=${{__field.labels.strategy}}&{TIME_RANGE}"
    money = [_property("unit", "currencyUSD"), _property("decimals", 0)]
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
            )
            .repeat("strategy")
            .data_links([DashboardLink("Fills of ${__field.labels.strategy}").url(fills_url)])
        )
        .with_panel(drawdown_series("Drawdown", where, ("strategy",)))
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
                'GROUP BY time($__interval), "strategy" fill(previous)',
                alias="$tag_strategy $col",
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
            ).decimals(1)
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
        .with_panel(
            grid("Round-trip statistics per book (click an account for its fills)", trip_stats, height=9, sort="trades")
            .override_by_name(
                "account",
                [
                    _property(
                        "links",
                        [
                            _link(
                                "Fills of ${__data.fields.strategy} in ${__value.raw}",
                                f"/d/{DASHBOARDS['fills']}?var-account=${{__value.raw}}"
                                f"&var-strategy=${{__data.fields.strategy}}&{TIME_RANGE}",
                            )
                        ],
                    )
                ],
            )
            .override_by_name("win rate", [_property("unit", "percentunit"), _property("decimals", 1)])
            .override_by_name("profit factor", [_property("decimals", 2)])
            .override_by_name("payoff", [_property("decimals", 2)])
            .override_by_name("expectancy", money)
            .override_by_name("avg win", money)
            .override_by_name("avg loss", money)
        )
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
            .color_scheme(FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))  # else the thresholds are ignored
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

    def panel(title: str, unit: str, query: str) -> timeseries.Panel:
        named = " AS " in query  # gauges name their columns; a rate is one column
        return series(title, unit, query, alias="$tag_instance · $col" if named else "$tag_instance", span=8)

    return (
        _base("stratmon · Collector health", "health", ["collector"])
        .time("now-1h", "now")
        .with_panel(panel("Intake (fills/s)", "short", counter_rate("fills_in")))
        .with_panel(panel("Rejected (records/s)", "short", counter_rate("fills_rejected")))
        .with_panel(panel("Duplicates (fills/s)", "short", counter_rate("fills_duplicate")))
        .with_panel(panel("Queue depth (batches)", "short", gauge("queue_depth")))
        .with_panel(panel("Lag (worst queue wait)", "ms", gauge("lag_ms")))
        .with_panel(panel("End-to-end latency", "ms", gauge("latency_p50_ms", "latency_p99_ms")))
        .with_panel(panel("Write errors (total)", "short", gauge("write_errors")))
        .with_panel(panel("Spooled points waiting", "short", gauge("spooled_points")))
        .with_panel(panel("Reject rate", "percentunit", gauge("reject_rate")))
        .with_panel(panel("Checkpoint time", "ms", gauge("checkpoint_ms")))
        .with_panel(panel("Alerts fired / notifications", "short", gauge("alerts_fired", "notifications_sent")))
        .with_panel(panel("Alert latency p99", "ms", gauge("alert_latency_p99_ms")))
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

LEGEND = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True}
TOOLTIP = {"mode": "multi", "sort": "desc"}
# Grafana 11.6's defaults for every required option and custom field config of the panel types used
# (panelcfg.cue / @grafana/schema 11.6.0): the builders set only what differs, and a provisioned
# dashboard then needs no migration to be schema-valid.
PANEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "timeseries": {"options": {"legend": LEGEND, "tooltip": TOOLTIP}, "custom": {}},
    "stat": {
        "options": {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "percentChangeColorMode": "standard",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showPercentChange": False,
            "textMode": "auto",
            "wideLayout": True,
        },
    },
    "table": {
        "options": {
            "cellHeight": "sm",
            "footer": {"countRows": False, "fields": [], "reducer": ["sum"], "show": False},
            "frameIndex": 0,
            "showHeader": True,
        },
        "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
    },
    "state-timeline": {
        "options": {
            "alignValue": "left",
            "legend": LEGEND,
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        },
        "custom": {"fillOpacity": 70, "lineWidth": 0},
    },
    "heatmap": {
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {
                "exponent": 0.5,
                "fill": "dark-orange",
                "mode": "scheme",
                "reverse": False,
                "scale": "linear",
                "scheme": "RdYlGn",
                "steps": 64,
            },
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "showValue": "auto",
            "tooltip": {"mode": "single", "showColorScale": True, "yHistogram": False},
            "yAxis": {"axisPlacement": "left", "reverse": False},
        },
        "custom": {},
    },
}
# Grafana's own alert list (no generated types in @grafana/schema 11.6.0): stratmon's rules, firing first
ALERT_LIST: dict[str, Any] = {
    "type": "alertlist",
    "title": "Grafana alerts (stratmon rules)",
    "options": {
        "alertInstanceLabelFilter": '{source="stratmon"}',
        "alertName": "",
        "dashboardAlerts": False,
        "groupBy": [],
        "groupMode": "default",
        "maxItems": 50,
        "sortOrder": 3,
        "stateFilter": {"error": True, "firing": True, "noData": True, "normal": False, "pending": True},
        "viewMode": "list",
    },
}
ALERT_LIST_ON = {"portfolio": 24, "alerts": 24}  # dashboard key → width
# SDK keys that belong to interval variables only; a query variable carrying them is not schema-valid
INTERVAL_ONLY = ("auto", "auto_count", "auto_min")


def _merged(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`given` over a copy of `defaults`, recursively for nested maps (a model never shares the defaults)."""
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _complete(panel: dict[str, Any]) -> None:
    """Fill in the required options and custom field config of the panel's type."""
    defaults = PANEL_DEFAULTS.get(panel["type"])
    if defaults is None:
        return
    panel["options"] = _merged(defaults["options"], panel.get("options") or {})
    field_config = panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
    if "custom" in defaults:
        field_config["defaults"]["custom"] = _merged(defaults["custom"], field_config["defaults"].get("custom") or {})


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
    if key in ALERT_LIST_ON:
        bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in model.get("panels", [])), default=0)
        position = {"h": 10, "w": ALERT_LIST_ON[key], "x": 0, "y": bottom}
        model.setdefault("panels", []).append(copy.deepcopy(ALERT_LIST) | {"gridPos": position})
    for number, panel in enumerate(model.get("panels", []), 1):
        panel["id"] = number
        _complete(panel)
    for variable in (model.get("templating") or {}).get("list", []):
        if variable.get("type") == "query":
            for name in INTERVAL_ONLY:
                variable.pop(name, None)
    annotations = model.setdefault("annotations", {}).setdefault("list", [])
    for spec in ANNOTATIONS:
        # the InfluxDB datasource reads the query and its columns from `target` (Grafana ≥ 10 migrates
        # top-level ones there, and a top-level query next to a target made every column its own marker)
        annotations.append(
            {
                "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
                "enable": True,
                "hide": False,
                "iconColor": spec["iconColor"],
                "name": spec["name"],
                "target": {
                    "query": spec["query"],
                    "rawQuery": True,
                    "refId": "Anno",
                    "resultFormat": "table",
                    "textColumn": spec["textColumn"],
                    "tagsColumn": spec["tagsColumn"],
                },
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
