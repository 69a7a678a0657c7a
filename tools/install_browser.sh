#!/usr/bin/env bash
# `make test`'s setup: Debian's headless Chromium and its driver for the report-page tests, where this machine can
# install them (root with apt-get; CI is). Elsewhere it says so, and those tests are skipped with that reason.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "install_browser.sh: installing chromium and chromium-driver (apt-get) for the report-page tests"
  (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }) \
    || echo "install_browser.sh: apt-get could not install chromium; the report-page browser tests will be skipped" >&2
else
  echo "install_browser.sh: no chromium and no root apt-get here; the report-page browser tests will be skipped" >&2
fi
