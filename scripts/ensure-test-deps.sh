#!/bin/sh
# Run by `npm test` (pretest), issue 14: the README's `npm ci && npm test` works on a fresh Debian
# with only Node and npm. Installs the system packages the tests use when one is missing (as root,
# with apt-get); otherwise names them and how to install them, and fails.
set -eu
need=""
have() { command -v "$1" >/dev/null 2>&1; }
have openssl || need="$need openssl"                            # TLS tests make certificates
have cc || need="$need gcc libc6-dev"                           # bench/loadgen.c, built by a test
{ have promtool && have prometheus; } || need="$need prometheus" # deploy/observability, promtool check metrics
have chromium || need="$need chromium"                          # console and report tests (playwright-core)
have chromedriver || need="$need chromium-driver"
have script || need="$need bsdutils"                            # wshub bench progress line (a pseudo-terminal)
have redis-server || need="$need redis-server"                  # backplane tests start their own
have haproxy || need="$need haproxy"                            # proxy tests (issue 17)
have nghttp || need="$need nghttp2-client"                      # an independent HTTP/2 client in C (issue 17)
# An independent HTTP/2 client in Python (issue 17, test/helpers/h2ws.py): Debian's python3 with its h2.
"${H2_PYTHON:-/usr/bin/python3}" -c 'import h2' >/dev/null 2>&1 || need="$need python3-h2"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "npm test needs these Debian packages:$need" >&2
  echo "install them with: sudo apt-get install -y --no-install-recommends$need" >&2
  exit 1
fi
echo "npm test: installing$need" >&2
apt-get update >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need >&2
# The packages may start a system Prometheus, Redis or HAProxy; the tests start their own on loopback.
for service in prometheus redis-server haproxy; do
  case "$need" in *"$service"*) { systemctl disable --now "$service" || service "$service" stop; } >/dev/null 2>&1 || true ;; esac
done
