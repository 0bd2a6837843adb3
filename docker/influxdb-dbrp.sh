#!/bin/bash
# InfluxDB 2.x init script (runs once, after DOCKER_INFLUXDB_INIT_MODE=setup): map the bucket to a
# v1 database/retention policy so the InfluxQL /query and /write endpoints (stratmon's reads,
# Grafana's datasource) can use it. Idempotent: an existing mapping is kept.
set -euo pipefail
bucket="${DOCKER_INFLUXDB_INIT_BUCKET}"
bucket_id="$(influx bucket list --name "${bucket}" --hide-headers | cut -f1)"
if influx v1 dbrp list --db "${bucket}" --hide-headers | grep -q "${bucket_id}"; then
    echo "DBRP mapping for ${bucket} exists"
else
    influx v1 dbrp create --db "${bucket}" --rp autogen --bucket-id "${bucket_id}" --default
fi
