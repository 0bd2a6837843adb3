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
# the panel an alert of each level shows (dashboardUid + panelId): dashboard key, panel title
ALERT_PANEL = {
    "portfolio": ("portfolio", "Portfolio drawdown"),
    "account": ("account", "Drawdown"),
    "strategy": ("strategy", "Drawdown"),
    "book": ("strategy", "Round-trip statistics per book (click an account for its fills)"),
    "collector": ("health", "Lag (worst queue wait)"),
}
