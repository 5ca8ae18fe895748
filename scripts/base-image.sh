#!/usr/bin/env bash
# Builds the local Docker base image for deploy/Dockerfile on a machine that
# cannot pull images from any registry:
#
#   scripts/base-image.sh [--force] [TAG]        (default TAG nixery-ts/base:bookworm)
#   docker-compose -f docker-compose.yml -f deploy/compose.local.yml up -d --build
#
# The image is a Debian bookworm root made by mmdebstrap (minbase) holding
#   - every package of scripts/apt-packages.txt (Nix, redis-server and the
#     Debian programs the bundled package set copies) plus nginx;
#   - this machine's Node (/usr/bin/node, its npm, /usr/include/node);
#   - this machine's package settings, read here and now, never written into
#     the repository: its apt sources and Acquire:: options, its npm config
#     files and its extra CA certificates (so `apt-get` and `npm ci` inside
#     `docker build --network host` reach the same mirrors the host uses).
# and is turned into an image with `docker import` (on the engine DOCKER_HOST
# points at).
#
# Cache: the root tarball is kept in ${NIXERY_CACHE_DIR:-~/.cache/nixery-ts}
# under a key hashed from everything above (this script, the package list,
# the Node version, the host's apt/npm settings and CA files). A tarball older
# than NIXERY_BASE_MAX_AGE_DAYS (default 7) is rebuilt, so Debian's security
# updates arrive. An image already carrying the key's label is not imported
# again. --force rebuilds regardless.
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

force=0
tag=nixery-ts/base:bookworm
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h|--help) sed -n '2,25p' "$self"; exit 0 ;;
    *) tag=$a ;;
  esac
done

cache=${NIXERY_CACHE_DIR:-${HOME:-/root}/.cache/nixery-ts}
max_age_days=${NIXERY_BASE_MAX_AGE_DAYS:-7}
mkdir -p "$cache"

log() { echo "base-image: $*" >&2; }

# --- what goes in ---------------------------------------------------------
mapfile -t pkgs < <(grep -hv '^\s*#' scripts/apt-packages.txt | awk 'NF{print $1}')
pkgs+=(nginx ca-certificates)
include=$(printf '%s\n' "${pkgs[@]}" | sort -u | paste -sd, -)

# The host's apt sources (one-line or deb822 files) and the apt.conf.d files
# that set Acquire:: options (the mirror's date checks, proxies, ...).
sources=()
[[ -s /etc/apt/sources.list ]] && grep -q '^\s*deb' /etc/apt/sources.list && sources+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] && sources+=("$f")
done
(( ${#sources[@]} )) || { log "no apt sources found on this machine"; exit 1; }
aptconf=()
for f in /etc/apt/apt.conf.d/*; do
  [[ -f $f ]] && grep -q '^\s*Acquire::' "$f" && aptconf+=("$f")
done
npmrcs=()
for f in /etc/npmrc /usr/etc/npmrc "${HOME:-/root}/.npmrc"; do [[ -f $f ]] && npmrcs+=("$f"); done
cas=()
for f in /usr/local/share/ca-certificates/*; do [[ -f $f ]] && cas+=("$f"); done
node_version=$(node --version)

key=$(
  {
    # Contents only (not paths: the key is the same wherever the checkout is).
    for f in "$self" scripts/apt-packages.txt "${sources[@]}" "${aptconf[@]}" "${npmrcs[@]}" "${cas[@]}"; do sha256sum < "$f"; done
    echo "$node_version $include ${NODE_EXTRA_CA_CERTS:-}"
  } | sha256sum | cut -c1-16
)
tarball=$cache/base-$key.tar

if (( !force )) && [[ -f $tarball ]] && [[ -n $(find "$tarball" -mtime -"$max_age_days" 2>/dev/null) ]]; then
  have=$(docker image inspect -f '{{index .Config.Labels "nixery-ts.base.key"}}' "$tag" 2>/dev/null || true)
  if [[ $have == "$key" ]]; then
    log "$tag is up to date (key $key)"
    exit 0
  fi
  log "using cached root $tarball"
else
  command -v mmdebstrap >/dev/null || { log "mmdebstrap missing (scripts/setup.sh --test installs it)"; exit 1; }
  log "building a bookworm root with mmdebstrap (key $key): ${include//,/ }"
  tmp=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # One-line "deb" entries go to mmdebstrap as they are; deb822 (.sources)
  # files are turned into one-line entries (mmdebstrap writes either kind to
  # the root's sources.list.d, which apt inside the image then uses).
  oneline=()
  deb822=()
  for f in "${sources[@]}"; do if [[ $f == *.sources ]]; then deb822+=("$f"); else oneline+=("$f"); fi; done
  if (( ${#deb822[@]} )); then
    python3 - "${deb822[@]}" > "$tmp/deb822.list" <<'PY'
import sys
for path in sys.argv[1:]:
    for stanza in open(path).read().split('\n\n'):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith('#') or ':' not in line or line[0].isspace():
                continue
            k, v = line.split(':', 1)
            fields[k.strip().lower()] = v.strip()
        if 'deb' not in fields.get('types', '').split():
            continue
        opts = f" [signed-by={fields['signed-by']}]" if fields.get('signed-by', '').startswith('/') else ''
        for uri in fields.get('uris', '').split():
            for suite in fields.get('suites', '').split():
                print(f"deb{opts} {uri} {suite} {fields.get('components', 'main')}")
PY
    oneline+=("$tmp/deb822.list")
  fi
  aptopts=()
  for f in "${aptconf[@]}"; do aptopts+=(--aptopt="$f"); done

  # Node, npm settings and CA certificates come from this machine.
  cat > "$tmp/customize.sh" <<'SH'
#!/bin/sh
set -eu
root=$1
cp -a /usr/bin/node "$root/usr/bin/node"
mkdir -p "$root/usr/lib/node_modules" "$root/usr/include"
cp -a /usr/lib/node_modules/npm "$root/usr/lib/node_modules/"
[ -d /usr/include/node ] && cp -a /usr/include/node "$root/usr/include/"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
for f in /etc/npmrc /usr/etc/npmrc; do
  if [ -f "$f" ]; then mkdir -p "$root$(dirname "$f")"; cp "$f" "$root$f"; fi
done
[ -f "${HOME:-/root}/.npmrc" ] && cp "${HOME:-/root}/.npmrc" "$root/root/.npmrc"
if ls /usr/local/share/ca-certificates/* >/dev/null 2>&1; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
mkdir -p "$root/nix/store" "$root/nix/var/nix"
# Debian's default nginx site listens on port 80; the lb image has its own config.
rm -f "$root/etc/nginx/sites-enabled/default"
SH
  chmod +x "$tmp/customize.sh"
  mmdebstrap --variant=minbase --mode=root --format=tar \
    --include="$include" \
    "${aptopts[@]}" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="$tmp/customize.sh \"\$1\"" \
    bookworm "$tmp/root.tar" "${oneline[@]}" >&2
  mv "$tmp/root.tar" "$tarball"
  # Older roots of other keys are of no further use.
  find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
fi

log "importing $tarball as $tag"
changes=(
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change "LABEL nixery-ts.base.key=$key"
  --change 'CMD ["bash"]'
)
[[ -n ${NODE_EXTRA_CA_CERTS:-} ]] && changes+=(--change "ENV NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS")
docker import "${changes[@]}" "$tarball" "$tag" >/dev/null
log "done: $tag"
