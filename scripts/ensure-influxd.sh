#!/usr/bin/env bash
# Make sure an `influxd` is on PATH: tests and the demo run a private one (InfluxDB 1.x).
set -euo pipefail
if command -v influxd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "influxd is missing and installing it needs root: run 'sudo apt-get install influxdb' (Debian/Ubuntu)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "influxd is missing and this is not a Debian-like system: install InfluxDB 1.x so that 'influxd' is on PATH" >&2
    exit 1
fi
echo "installing Debian's influxdb package (influxd 1.6.x) ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101: the package must not start a system-wide influxd; we run private ones.
cleanup() { rm -f /usr/sbin/policy-rc.d; }
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap cleanup EXIT
fi
apt-get install -y -qq influxdb >/dev/null
command -v influxd >/dev/null
