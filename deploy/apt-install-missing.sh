#!/bin/sh
# apt-install-missing PKG...: installs those of the given Debian packages that
# are not installed yet (without recommends), then drops apt's lists. On a
# base that already has them all (scripts/base-image.sh) it does nothing and
# needs no network.
set -eu
missing=
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "apt-install-missing: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
rm -rf /var/lib/apt/lists/*
