"""docker-compose.yml, Dockerfile and .env.example cross-checked (no Docker engine can run here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.cli import build_parser
from collector.config import load_settings
from tests.bus.natscluster import nats_server_binary

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
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == {"influxdb", "grafana", "collector", "grafana-alerting"}
    for name, service in services.items():
        image = service.get("image", "")
        assert re.search(r":\d+\.\d+(\.\d+)?(-alpine)?$", image), f"{name}: image {image!r} is not pinned"
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


# Profile `scale`: the bus mode (docs/scale.md) beside the default services, which it must leave as they are.
SCALE_UP = "docker compose --profile scale up -d --scale collector=0"
STRATMON_IMAGE = "stratmon-collector:0.1.0"
NATS_CONFIG = ROOT / "docker" / "nats.conf"


def _scale() -> dict[str, dict[str, Any]]:
    scale = {name: s for name, s in _compose()["services"].items() if "profiles" in s}
    assert scale and all(service["profiles"] == ["scale"] for service in scale.values())
    return scale


def _nodes() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _scale().items() if s["image"].startswith("nats:")}


def _processes() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _scale().items() if s["image"] == STRATMON_IMAGE}


def test_scale_profile_is_a_three_node_jetstream_cluster_with_file_storage_on_its_own_volumes() -> None:
    volumes, nodes = _compose()["volumes"], _nodes()
    assert len(nodes) == 3 and set(_scale()) == set(nodes) | set(_processes())
    conf = NATS_CONFIG.read_text()
    assert sorted(re.findall(r"nats://([\w-]+):6222", conf)) == sorted(nodes)  # every node routes to all three
    assert "store_dir: /data/jetstream" in conf and "token: $NATS_TOKEN" in conf
    assert {node["environment"]["NATS_SERVER_NAME"] for node in nodes.values()} == set(nodes)  # unique names
    stores = set()
    for name, node in nodes.items():
        assert "./docker/nats.conf:/etc/nats/stratmon.conf:ro" in node["volumes"], name
        assert node["command"][-1].endswith("exec nats-server --config /etc/nats/stratmon.conf"), name
        (store,) = [volume.split(":")[0] for volume in node["volumes"] if volume.endswith(":/data")]
        assert store in volumes, name
        stores.add(store)
        assert node["environment"]["NATS_TOKEN"] == "${STRATMON_NATS_TOKEN:-}", name
        assert "healthcheck" in node and "js-enabled-only=true" in node["healthcheck"]["test"][-1], name
    assert len(stores) == 3  # a replica per node only survives a node's loss on a volume of its own


def test_the_nats_config_is_what_nats_server_accepts_and_no_node_starts_without_the_token() -> None:
    binary = nats_server_binary()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    tested = re.search(r"v(\d+\.\d+\.\d+)", version)
    assert tested is not None
    assert {node["image"] for node in _nodes().values()} == {f"nats:{tested[1]}-alpine"}  # the version tests run
    env = {"PATH": os.environ.get("PATH", ""), "NATS_SERVER_NAME": "nats-1", "NATS_TOKEN": "t" * 32}
    valid = subprocess.run([binary, "-t", "-c", str(NATS_CONFIG)], env=env, capture_output=True, text=True)
    assert valid.returncode == 0, valid.stderr
    del env["NATS_TOKEN"]
    missing = subprocess.run([binary, "-t", "-c", str(NATS_CONFIG)], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "NATS_TOKEN" in missing.stderr
    # An empty token would start a server without authorization: the node's command refuses it first.
    # (No `${VAR:?}`: Compose interpolates every service, so it would stop the default profile as well.)
    command = _nodes()["nats-1"]["command"]
    assert command[:2] == ["sh", "-c"]
    env["NATS_TOKEN"] = ""
    refused = subprocess.run(["sh", "-c", command[2].replace("$$", "$")], env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "STRATMON_NATS_TOKEN" in refused.stderr


def test_scale_processes_are_the_clis_commands_and_the_workers_cover_every_partition() -> None:
    parser = build_parser()
    processes = _processes()
    commands = {name: service["command"] for name, service in processes.items()}
    roles = sorted(command[0] for command in commands.values())
    assert roles.count("run") == 1 and roles.count("aggregate") == 1 and roles.count("worker") >= 2
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    assert cmd is not None
    services = _compose()["services"].items()
    every = {name: s.get("command", json.loads(cmd[1])) for name, s in services if s.get("image") == STRATMON_IMAGE}
    for name, command in every.items():
        try:
            parser.parse_args(command)  # the real argparse: a wrong flag fails here, not in a container
        except SystemExit:
            raise AssertionError(f"{name}: `stratmon {' '.join(command)}` is not a valid command") from None
    partitions = {int(s["environment"]["STRATMON_BUS_PARTITIONS"]) for s in processes.values()}
    assert len(partitions) == 1  # one stream: every process must agree on P
    owned: list[int] = []
    for command in commands.values():
        if command[0] == "worker":
            first, _, last = command[command.index("--partitions") + 1].partition("-")
            owned += range(int(first), int(last or first) + 1)
    assert sorted(owned) == list(range(partitions.pop()))  # each partition has exactly one worker
    for name, service in processes.items():
        # only `run` serves HTTP (/healthz): the image's check is switched off where there is none
        assert service["healthcheck"].get("disable", False) == (service["command"][0] != "run"), name


def test_scale_processes_reach_the_cluster_influxdb_and_the_token_after_they_are_healthy() -> None:
    nodes = _nodes()
    for name, service in _processes().items():
        env = service["environment"]
        assert env["STRATMON_NATS_TOKEN"] == "${STRATMON_NATS_TOKEN:-}", name
        assert env["STRATMON_BUS_KIND"] == "jetstream", name
        urls = json.loads(env["STRATMON_BUS_URLS"])
        assert sorted(urls) == sorted(f"nats://{node}:4222" for node in nodes), name
        assert int(env["STRATMON_BUS_REPLICAS"]) == len(nodes), name  # R3: a copy of the stream on every node
        assert env["STRATMON_INFLUX_URL"] == "http://influxdb:8086", name
        assert env["STRATMON_INFLUX_DATABASE"] == "stratmon", name  # the database Grafana reads
        needs = {dependency: condition["condition"] for dependency, condition in service["depends_on"].items()}
        assert needs == {"influxdb": "service_healthy"} | dict.fromkeys(nodes, "service_healthy"), name
        own, shared = service["volumes"][0], service["volumes"][1:]
        assert own == f"{name}-state:/var/lib/stratmon", name  # state of its own
        assert shared in ([], ["scale-parameters:/var/lib/stratmon/.stratmon"]), name
    # the optimizer (in the aggregator) writes the parameter store the simulated desk (in the router) reads
    for name in ("router", "aggregator"):
        assert "scale-parameters:/var/lib/stratmon/.stratmon" in _processes()[name]["volumes"], name
    simulator = yaml.safe_load((ROOT / "docker" / "collector.yaml").read_text())["sources"][1]
    assert Path(simulator["parameters_file"]).parent == Path("/var/lib/stratmon/.stratmon")
    assert "/var/lib/stratmon/.stratmon" in (ROOT / "Dockerfile").read_text()  # owned by the non-root user


def test_the_scale_environment_is_a_valid_bus_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's config (docker/collector.yaml) plus a scale process's environment load into `bus:`."""
    for name in [name for name in os.environ if name.startswith("STRATMON_")]:
        monkeypatch.delenv(name)
    for name, value in _processes()["aggregator"]["environment"].items():
        monkeypatch.setenv(name, VARIABLE.sub("x" * 32, str(value)))  # a filled-in .env
    bus = load_settings(ROOT / "docker" / "collector.yaml").bus
    assert bus is not None and bus.kind == "jetstream" and bus.partitions == 4 and bus.replicas == 3
    assert sorted(bus.urls) == sorted(f"nats://{node}:4222" for node in _nodes())


def test_scale_profile_is_started_in_place_of_the_single_process_collector() -> None:
    """A profile only adds services: the documented command scales the single-process collector to 0, so two
    pipelines never write the same database, and Compose does not wait on a service scaled to 0."""
    compose_text = (ROOT / "docker-compose.yml").read_text()
    docs = (ROOT / "docs" / "scale.md").read_text()
    assert SCALE_UP in compose_text and SCALE_UP in docs and SCALE_UP in (ROOT / "README.md").read_text()
    assert "STRATMON_NATS_TOKEN=" in (ROOT / ".env.example").read_text()
    # the image carries the bus extra (nats-py): the workers import it
    assert re.search(r"pip install [\"']?\.\[bus\]", (ROOT / "Dockerfile").read_text())
