#!/usr/bin/env bash
# Make sure a headless Chromium is available: a test opens `stratmon report --html` pages in it.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing: install Debian's 'chromium' package (the HTML report test needs it)" >&2
    exit 1
fi
echo "installing Debian's chromium package ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
