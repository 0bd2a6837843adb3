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
# the dashboard an alert of each level links to
DASHBOARD_OF_LEVEL = {
    "portfolio": DASHBOARDS["portfolio"],
    "account": DASHBOARDS["account"],
    "strategy": DASHBOARDS["strategy"],
    "book": DASHBOARDS["strategy"],
    "collector": DASHBOARDS["health"],
}
