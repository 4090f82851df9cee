#!/usr/bin/env bash
# Installs Debian's Chromium for the real-browser test when it is missing.
# Quiet and idempotent; never fails the caller: where Chromium cannot be
# installed, the browser test is skipped and says why.
set -uo pipefail
CHROMIUM=${PIKA_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: no apt-get here; the browser test will be skipped" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
    else
        echo "install_browser: not root; the browser test will be skipped" >&2
        exit 0
    fi
fi
log=$(mktemp)
export DEBIAN_FRONTEND=noninteractive
if $sudo apt-get update -qq >"$log" 2>&1 \
    && $sudo apt-get install -y -qq --no-install-recommends chromium >>"$log" 2>&1; then
    echo "install_browser: installed $("$CHROMIUM" --version 2>/dev/null)"
else
    echo "install_browser: could not install chromium; the browser test will be skipped:" >&2
    tail -n 5 "$log" >&2
fi
rm -f "$log"
exit 0
