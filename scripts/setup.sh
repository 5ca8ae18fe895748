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
apt_start=$SECONDS
if (( ${#missing[@]} )); then
  echo "setup: installing system packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: apt took $((SECONDS - apt_start)) s"
fi

# Nix as root, single-user: make sure the store exists.
if [[ ! -d /nix/store ]]; then
  mkdir -p /nix/store /nix/var/nix
fi

# npm dependencies. `npm start` installs only what the registry needs (the
# root's and the workspaces' "dependencies": TypeScript and its types build it);
# `npm test` also installs the devDependencies (the GCS emulator of
# firebase-tools, tsx, playwright-core, madge, ...). node_modules/.nixery-deps
# says which of the two is installed; `npm ci` runs again when the lockfile
# changed or the tests need more than a start installed.
deps_mark=node_modules/.nixery-deps
have=none
if [[ -f node_modules/.package-lock.json && ! package-lock.json -nt node_modules/.package-lock.json ]]; then
  have=$(cat "$deps_mark" 2>/dev/null || echo all) # no mark: an install from before the two kinds
fi
want=runtime
(( want_test )) && want=all
if [[ $have == none || ( $want == all && $have != all ) ]]; then
  npm_start=$SECONDS
  omit=()
  [[ $want == runtime ]] && omit=(--omit=dev)
  echo "setup: npm ci${omit[*]:+ ${omit[*]}}"
  npm ci "${omit[@]}" --no-audit --no-fund --loglevel=error
  echo "$want" > "$deps_mark"
  echo "setup: npm ci took $((SECONDS - npm_start)) s"
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

# Build. `npm test`, and any start after a type-checked build, runs `tsc -b`
# (incremental); a first `npm start` turns each file into JavaScript without
# type checking (scripts/transpile.js: about 1 s of CPU instead of 15 s).
if (( want_test )) || [[ -f dist/.tsbuildinfo ]]; then
  npx --no-install tsc -b tsconfig.json
else
  node scripts/transpile.js
fi

# aarch64-linux images on this x86-64 machine (issue 13): the arm64 package
# tree and qemu user emulation, only when an arm64 platform is asked for (or
# for the tests), so a plain first `npm start` downloads nothing for it.
if (( want_test )) || [[ "${NIXERY_PLATFORMS:-}" == *arm64* || "${NIXERY_WORKER_SYSTEMS:-}" == *aarch64* ]]; then
  bash scripts/setup-arm64.sh
fi
