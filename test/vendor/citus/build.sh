#!/usr/bin/env bash
# Builds and installs Citus 13.2.2 (the release that supports PostgreSQL 15) from the source
# tarball beside this script, for Debian's PostgreSQL 15: what the Citus tests (issue 27) need on
# a machine with no registry but Debian's. A user installs Citus from Citus's own packages.
#
#   bash test/vendor/citus/build.sh        # as root or through sudo; 2-4 minutes on 2 cores, once
#
# The build is cached in SICOOP_CITUS_CACHE (default /var/tmp/sicoop-citus-13.2.2, keyed by the
# tarball's and the patch's checksums): a later call only installs it, into SICOOP_PGROOT if set
# (as test/env.sh installs sicoop_etl). One patch is applied: Debian's PostgreSQL 15.18 headers
# declare have_createdb_privilege(), which Citus 13.2.2 also defines for PostgreSQL < 16
# (pg15-minor-compat.patch renames Citus's copy). License: AGPL-3.0 (LICENSE in the tarball).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
key=$(cat "$here/citus-13.2.2.tar.gz" "$here/pg15-minor-compat.patch" | sha256sum | cut -c1-16)
cache=${SICOOP_CITUS_CACHE:-/var/tmp/sicoop-citus-13.2.2}
src=$cache/$key/citus-13.2.2
if [ ! -f "$cache/$key/built" ]; then
  need=()
  for p in postgresql-server-dev-15 liblz4-dev libzstd-dev libkrb5-dev libssl-dev libxml2-dev libxslt1-dev \
           libselinux1-dev libpam0g-dev libreadline-dev zlib1g-dev libicu-dev make gcc patch; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  rm -rf "${cache:?}/$key" && mkdir -p "$cache/$key"
  tar xzf "$here/citus-13.2.2.tar.gz" -C "$cache/$key"
  (cd "$src" && patch -s -p1 <"$here/pg15-minor-compat.patch")
  (cd "$src" && ./configure --without-libcurl >"$cache/$key/configure.log" 2>&1) || { tail -20 "$cache/$key/configure.log"; exit 1; }
  make -C "$src" -j"$(nproc)" -s >"$cache/$key/make.log" 2>&1 || { tail -30 "$cache/$key/make.log"; exit 1; }
  touch "$cache/$key/built"
fi
as_root make -C "$src" -s install ${SICOOP_PGROOT:+DESTDIR=$SICOOP_PGROOT} >"$cache/$key/install.log" 2>&1 ||
  { tail -20 "$cache/$key/install.log"; exit 1; }
echo "citus 13.2.2 installed${SICOOP_PGROOT:+ into $SICOOP_PGROOT} (build cached in $cache/$key)"
