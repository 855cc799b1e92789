#!/bin/sh
# What the tests need from the operating system, installed if missing: Debian's
# Chromium, driven by Playwright for the dashboard's browser tests (Playwright's
# own browser download needs a network we do not assume). Everything else the
# tests need (PostgreSQL server binaries included) comes from PyPI with
# `pip install -e '.[test]'`.
set -eu
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1; then
    run="sudo"
else
    echo "tests: Chromium is missing; install Debian's chromium package (as root: apt-get install chromium)" >&2
    exit 1
fi
echo "tests: installing Debian's chromium package for the browser tests" >&2
$run apt-get update -qq
DEBIAN_FRONTEND=noninteractive $run apt-get install -y -qq chromium >/dev/null
