#!/usr/bin/env bash
# Headless Chromium + chromedriver for the web page's browser tests (Debian packages).
# Skips when both are present; without root or passwordless sudo it says so and the browser tests skip.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "warning: chromium/chromedriver missing and no root to install them; the browser tests will be skipped" >&2
    exit 0
fi
echo "installing chromium and chromium-driver (Debian packages) for the browser tests..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
