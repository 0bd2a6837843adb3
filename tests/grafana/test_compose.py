"""docker-compose.yml, Dockerfile and .env.example cross-checked (no Docker engine can run here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
SECRET = re.compile(r"PASSWORD|TOKEN|SECRET")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _documented() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_every_variable_is_documented_and_no_secret_has_a_default() -> None:
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    documented = _documented()
    uses = VARIABLE.findall(text)
    assert uses
    for name, operator, default in uses:
        assert name in documented, f"${{{name}}} is not in .env.example"
        if SECRET.search(name):
            assert documented[name] == "", f".env.example must not ship a value for {name}"
            assert operator in ("", ":?", ":-") and (operator != ":-" or default == ""), f"{name} has a default"
    for required in (
        "INFLUXDB_TOKEN",
        "INFLUXDB_ADMIN_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "GRAFANA_INFLUX_PASSWORD",
        "STRATMON_HTTP_TOKEN",
    ):
        assert f"${{{required}:?" in text, f"compose must refuse to start without {required}"
    described = False  # every variable (or group of variables) sits under a comment
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            described = True
        elif not line.strip():
            described = False
        else:
            assert described, f"{line.partition('=')[0]} has no comment in .env.example"


def test_services_images_volumes_and_health() -> None:
    compose = _compose()
    services = compose["services"]
    assert isinstance(services, dict) and set(services) == {"influxdb", "grafana", "collector", "grafana-alerting"}
    for name, service in services.items():
        image = service.get("image", "")
        assert re.search(r":\d+\.\d+(\.\d+)?$", image), f"{name}: image {image!r} is not pinned"
        assert "healthcheck" in service or service.get("restart") == "no", name  # one-shots need none
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"grafana"}
    assert services["influxdb"]["image"].startswith("influxdb:2.7")
    assert services["grafana"]["image"] == "grafana/grafana-oss:11.6.0"  # what grafana-foundation-sdk 11.6 targets
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and grafana["GF_DASHBOARDS_MIN_REFRESH_INTERVAL"] == "1s"
    assert services["grafana"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert services["collector"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"] == "stratmon"
    assert "GF_SERVER_ROOT_URL" in grafana  # alert links are absolute
    assert not any("INFLUXDB_TOKEN" in str(value) for value in grafana.values())  # read-only login, not the admin


def test_grafana_starts_after_the_alerting_files_are_rendered_for_its_environment() -> None:
    """Grafana reads provisioning/alerting from the volume the one-shot writes, never the committed directory."""
    services = _compose()["services"]
    init, grafana = services["grafana-alerting"], services["grafana"]
    assert grafana["depends_on"]["grafana-alerting"]["condition"] == "service_completed_successfully"
    assert init["command"][:2] == ["grafana", "alerting"]
    out = init["command"][init["command"].index("--out") + 1]
    assert f"grafana-alerting:{out}" in init["volumes"]
    assert "grafana-alerting:/etc/grafana/provisioning/alerting:ro" in grafana["volumes"]
    assert not any(v.startswith("./grafana/provisioning:") for v in grafana["volumes"])
    # what the renderer reads to decide on receivers reaches it, and what Grafana expands reaches Grafana
    for name in ("STRATMON_SLACK_WEBHOOK_URL", "STRATMON_ALERT_WEBHOOK_URL", "GF_SMTP_ENABLED", "GF_SMTP_HOST"):
        assert name in init["environment"] and name in grafana["environment"], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"-o stratmon -g stratmon {out}" in dockerfile  # the non-root renderer can write the volume
    datasource = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "stratmon.yaml").read_text())
    for variable in ("GRAFANA_INFLUX_USER", "GRAFANA_INFLUX_PASSWORD", "STRATMON_INFLUX_URL"):
        assert variable in str(datasource) and variable in grafana["environment"], variable


def test_dockerfile_is_slim_non_root_and_healthchecked() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    assert re.search(r"^USER (?!root)\S+", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / copied).exists(), copied


def test_dbrp_init_script_maps_the_bucket() -> None:
    script = (ROOT / "docker" / "influxdb-dbrp.sh").read_text()
    assert "influx v1 dbrp create" in script and "--default" in script
    assert "influx v1 auth create" in script and "--read-bucket" in script and "--write-bucket" not in script
    assert (ROOT / "docker" / "influxdb-dbrp.sh").stat().st_mode & 0o111
