#!/bin/bash
# InfluxDB 2.x init script (runs once, after DOCKER_INFLUXDB_INIT_MODE=setup): map the bucket to a
# v1 database/retention policy so the InfluxQL /query and /write endpoints (stratmon's reads,
# Grafana's datasource) can use it, and create the read-only v1 login Grafana's datasource uses
# (read access to this bucket only). Idempotent: an existing mapping or login is kept.
set -euo pipefail
bucket="${DOCKER_INFLUXDB_INIT_BUCKET}"
bucket_id="$(influx bucket list --name "${bucket}" --hide-headers | cut -f1)"
if influx v1 dbrp list --db "${bucket}" --hide-headers | grep -q "${bucket_id}"; then
    echo "DBRP mapping for ${bucket} exists"
else
    influx v1 dbrp create --db "${bucket}" --rp autogen --bucket-id "${bucket_id}" --default
fi
user="${GRAFANA_INFLUX_USER:-grafana}"
if influx v1 auth list --username "${user}" --hide-headers | grep -q "${user}"; then
    echo "read-only login ${user} exists"
else
    influx v1 auth create --username "${user}" --password "${GRAFANA_INFLUX_PASSWORD:?}" \
        --read-bucket "${bucket_id}" --description "Grafana datasource (read-only)"
fi
