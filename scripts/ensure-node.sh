#!/usr/bin/env bash
# Make sure Node.js, npm and the pinned TypeScript + @grafana/schema are installed: a test type-checks
# every generated dashboard against Grafana's published schema (tests/grafana/test_schema.py).
# Debian's nodejs/npm when missing; the npm packages exactly as tests/grafana/tscheck/package-lock.json pins them.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tests/grafana/tscheck
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "node/npm are missing: install Debian's 'nodejs' and 'npm' packages (the dashboard schema test needs them)" >&2
        exit 1
    fi
    echo "installing Debian's nodejs and npm packages ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
fi
stamp="$dir/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
    echo "npm ci in $dir ..." >&2
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
fi
test -f "$dir/node_modules/typescript/bin/tsc" && test -f "$dir/node_modules/@grafana/schema/package.json"
