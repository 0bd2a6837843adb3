"""Fixed names the provisioning files share: the datasource uid, the folder, dashboard uids."""

from __future__ import annotations

DATASOURCE_UID = "stratmon-influxdb"
DATASOURCE_TYPE = "influxdb"
FOLDER = "stratmon"
ORG_ID = 1

DASHBOARDS = {
    "portfolio": "stratmon-portfolio",
    "account": "stratmon-account",
    "strategy": "stratmon-strategy",
    "fills": "stratmon-fills",
    "alerts": "stratmon-alerts",
    "health": "stratmon-health",
}
# the panel an alert shows (dashboardUid + panelId): dashboard key and panel title, by level ...
ALERT_PANEL = {
    "portfolio": ("portfolio", "Portfolio equity"),
    "account": ("account", "Equity · $account"),
    "strategy": ("strategy", "Equity · $strategy"),
    "book": ("strategy", "Round-trip statistics per book (click an account for its fills)"),
    "collector": ("health", "Lag (worst queue wait)"),
}
# ... the drawdown panel for drawdown rules, and the metric's own panel for health rules
DRAWDOWN_PANEL = {
    "portfolio": ("portfolio", "Portfolio drawdown"),
    "account": ("account", "Drawdown"),
    "strategy": ("strategy", "Drawdown"),
}
HEALTH_PANEL = {
    "reject_rate": "Reject rate",
    "write_errors": "Write errors (total)",
    "spooled_points": "Spooled points waiting",
    "lag_ms": "Lag (worst queue wait)",
    "latency_p99_ms": "End-to-end latency",
    "queue_depth": "Queue depth (batches)",
    "fills_duplicate": "Duplicates (fills/s)",
}
