#!/usr/bin/env bash
# Debian packages some tests use: headless Chromium + chromedriver (the web page's browser tests) and
# PostgreSQL's server binaries (the service's --db postgresql tests start a throwaway cluster).
# Skips what is present; without root or passwordless sudo it says so and those tests skip with a reason.
set -uo pipefail
need=()
{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || need+=(chromium chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "warning: ${need[*]} missing and no root to install them; the tests that need them will be skipped" >&2
    exit 0
fi
echo "installing ${need[*]} (Debian packages) for the browser and PostgreSQL tests..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
