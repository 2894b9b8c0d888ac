#!/usr/bin/env bash
# Installs or starts what the test suite needs outside Python: a Java runtime for
# Spark, Debian's Chromium for the browser tests, and PostgreSQL at 127.0.0.1:5432. It never hides a missing service: the
# suite itself fails if PostgreSQL is still unreachable.
set -euo pipefail

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi; }
apt_updated=0
apt_install() {
  if ((apt_updated == 0)); then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v java >/dev/null 2>&1; then
  echo "system-deps: installing a Java runtime for PySpark"
  apt_install default-jre-headless
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "system-deps: installing Debian's Chromium for the browser tests"
  apt_install chromium
fi

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "system-deps: installing PostgreSQL"
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  conf=/etc/postgresql/$version/main/pg_hba.conf
  # The suite connects as postgres without a password on the loopback address.
  if ! grep -q "accord-test" "$conf"; then
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust # accord-test' "$conf"
  fi
  echo "system-deps: starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
pg_up || { echo "system-deps: PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1; }

# The browser collection tests load Segment's and RudderStack's libraries unchanged from
# npm (pinned in tests/web/npm-libs/package.json) into .cache/npm-libs.
if ! command -v npm >/dev/null 2>&1; then
  echo "system-deps: installing npm for the browser library tests"
  apt_install npm
fi
python3 -m tests.web.npm_libs >/dev/null
