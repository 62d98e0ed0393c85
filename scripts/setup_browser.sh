#!/usr/bin/env bash
# Make Debian's Chromium available for the browser tests (tests/server/test_page_browser.py).
# Idempotent and fast when it is already installed; needs root and apt-get to install it, and prints one line
# saying why when it cannot (the browser tests then skip with that reason). Playwright's own browser download
# does not work here: the tests drive the system browser at /usr/bin/chromium.
set -u

CHROMIUM="${SOUNDSMITH_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    echo "setup_browser: chromium present at $CHROMIUM"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_browser: no apt-get on this machine; install Chromium yourself (browser tests will skip)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup_browser: not root; run 'sudo apt-get install -y chromium' to enable the browser tests"
    exit 0
fi
echo "setup_browser: installing Debian's chromium (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
if { apt-get install -y --no-install-recommends chromium >/tmp/setup_browser.log 2>&1 ||
     { apt-get update >>/tmp/setup_browser.log 2>&1 &&
       apt-get install -y --no-install-recommends chromium >>/tmp/setup_browser.log 2>&1; }; } &&
   [ -x "$CHROMIUM" ]; then
    echo "setup_browser: chromium installed at $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null))"
else
    echo "setup_browser: apt-get could not install chromium (see /tmp/setup_browser.log); browser tests will skip"
fi
exit 0
