#!/usr/bin/env bash
# Idempotent set-up for `npm start` and `npm test` on Debian/Ubuntu (as root):
# installs missing system packages, runs `npm ci` when needed, builds.
# Fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

lists=(scripts/apt-packages.txt)
(( want_test )) && lists+=(scripts/apt-packages-test.txt)

missing=()
for pkg in $(grep -hv '^\s*#' "${lists[@]}" | awk 'NF{print $1}'); do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if (( ${#missing[@]} )); then
  echo "setup: installing system packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Nix as root, single-user: make sure the store exists.
if [[ ! -d /nix/store ]]; then
  mkdir -p /nix/store /nix/var/nix
fi

# npm dependencies: install when the lockfile changed since the last install.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Compiled files whose source is gone (moved or deleted) would shadow a new
# folder of the same name (dist/runtime.js before dist/runtime/index.js): remove them.
for pkg in libs/shared apps/gateway apps/worker apps/popcount-job .; do
  [[ -d $pkg/dist ]] || continue
  while IFS= read -r js; do
    rel=${js#"$pkg"/dist/}
    [[ -f $pkg/src/${rel%.js}.ts ]] || rm -f "$js" "${js%.js}.d.ts" "$js.map" "${js%.js}.d.ts.map"
  done < <(find "$pkg/dist" -name '*.js')
done

# Build (incremental).
npx --no-install tsc -b tsconfig.json

# aarch64-linux images on this x86-64 machine (issue 13): the arm64 package
# tree and qemu user emulation, only when an arm64 platform is asked for (or
# for the tests), so a plain first `npm start` downloads nothing for it.
if (( want_test )) || [[ "${NIXERY_PLATFORMS:-}" == *arm64* || "${NIXERY_WORKER_SYSTEMS:-}" == *aarch64* ]]; then
  bash scripts/setup-arm64.sh
fi
