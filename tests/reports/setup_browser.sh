#!/bin/sh
# Install the headless browser that tests/reports/test_browser.py renders the HTML report in.
# Debian bookworm: `chromium` alone is enough (the tests drive it from the command line: --dump-dom,
# --screenshot, --print-to-pdf, console messages read from --enable-logging=stderr; no webdriver).
# ~120 MB download, ~500 MB on disk. Idempotent: does nothing when /usr/bin/chromium exists.
set -eu
if [ -x /usr/bin/chromium ]; then
  /usr/bin/chromium --version 2>/dev/null
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium fonts-dejavu-core
/usr/bin/chromium --version 2>/dev/null
