#!/usr/bin/env bash
# Set-up for building aarch64-linux (arm64) images on an x86-64 machine
# (issue 13), run by scripts/setup.sh when NIXERY_PLATFORMS names an arm64
# platform, NIXERY_WORKER_SYSTEMS names aarch64-linux, or for `npm test`.
# Idempotent; a second run only checks.
#
# 1. Debian's arm64 architecture (`dpkg --add-architecture arm64`, then
#    `apt-get update`), only when it is missing; qemu-user-static.
# 2. The arm64 .deb files listed in scripts/debs-arm64.txt (the version the
#    amd64 package has on this machine where the archive has it) downloaded
#    into $ARM64_CACHE/debs and unpacked with `dpkg-deb -x` into
#    $ARM64_CACHE/root: a merged-/usr tree with its own dpkg status and file
#    lists, which nix/pkgs reads for system aarch64-linux.
# 3. qemu-aarch64 registered with binfmt_misc (mounted first if needed), with
#    the F flag so that it works inside chroots and containers too. A machine
#    where that is impossible still builds amd64: the step says so and ends.
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep in step with nix/pkgs/default.nix (debianRoots) and libs/shared/src/nix/platforms.ts.
ARM64_CACHE=/var/cache/nixery/debian-arm64
LIST=scripts/debs-arm64.txt
BINFMT=/proc/sys/fs/binfmt_misc

if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=600 -qq)
# apt-get update waits for no lock (Lock::Timeout covers dpkg's only): retry while another apt runs.
apt_update() {
  local i
  for i in $(seq 60); do
    $SUDO apt-get "${APT_OPTS[@]}" update && return 0
    sleep 10
  done
  return 1
}

# 1. The arm64 architecture and the emulator.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding Debian's arm64 architecture"
  $SUDO dpkg --add-architecture arm64
  apt_update
elif ! apt-cache show --no-all-versions libc6:arm64 >/dev/null 2>&1; then
  apt_update
fi
if ! dpkg-query -W -f='${Status}' qemu-user-static 2>/dev/null | grep -q 'install ok installed'; then
  echo "setup: installing qemu-user-static"
  $SUDO apt-get "${APT_OPTS[@]}" install -y --no-install-recommends qemu-user-static >/dev/null
fi

# 2. The arm64 tree. Its stamp is the hash of the package list and of the
#    versions chosen, so a changed list or an upgraded host package remakes it.
wanted=$(grep -v '^\s*#' "$LIST" | awk 'NF{print $1}')
version_of() { # the amd64 version on this machine, if installed
  dpkg-query -W -f='${Status} ${Version}\n' "$1:amd64" "$1" 2>/dev/null | awk '$3 == "installed" {print $4; exit}'
}
plan=$(for p in $wanted; do echo "$p $(version_of "$p")"; done)
stamp=$(printf '%s\n' "$plan" | sha256sum | cut -d' ' -f1)
deb_of() { # the downloaded .deb of package $1, if any
  local f
  for f in "$ARM64_CACHE/debs/${1}_"*_arm64.deb "$ARM64_CACHE/debs/${1}_"*_all.deb; do
    if [[ -e "$f" ]]; then echo "$f"; return 0; fi
  done
}
if [[ "$(cat "$ARM64_CACHE/root/.nixery-stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "setup: downloading and unpacking Debian arm64 packages into $ARM64_CACHE"
  $SUDO mkdir -p "$ARM64_CACHE/debs"
  $SUDO chown "$(id -u):$(id -g)" "$ARM64_CACHE" "$ARM64_CACHE/debs"
  (
    cd "$ARM64_CACHE/debs"
    fetch=()
    while read -r p v; do
      have=$(deb_of "$p")
      if [[ -n "$have" ]]; then
        # a file of this package is here: keep it if it has the wanted version
        [[ -z "$v" || "$(dpkg-deb -f "$have" Version)" == "$v" ]] && continue
        rm -f "$have"
      fi
      fetch+=("$p:arm64${v:+=$v}")
    done <<< "$plan"
    dl() { apt-get -qq -o APT::Sandbox::User=root download "$@" >/dev/null; }
    # One apt-get for all; when one version is gone from the archive, one by one, that one at the archive's version.
    if (( ${#fetch[@]} )) && ! dl "${fetch[@]}" 2>/dev/null; then
      for f in "${fetch[@]}"; do
        [[ -n "$(deb_of "${f%%:*}")" ]] || dl "$f" 2>/dev/null || dl "${f%%=*}"
      done
    fi
  )
  stage="$ARM64_CACHE/root.new"
  rm -rf "$stage"
  mkdir -p "$stage/var/lib/dpkg/info"
  : > "$stage/var/lib/dpkg/status"
  for p in $wanted; do
    deb=$(deb_of "$p")
    [[ -n "$deb" ]] || { echo "setup: no arm64 package $p was downloaded" >&2; exit 1; }
    dpkg-deb -x "$deb" "$stage"
    # the file list and status stanza dpkg would have written
    dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's#^\./#/#' -e 's#/$##' -e 's#^$#/.#' > "$stage/var/lib/dpkg/info/$p:arm64.list"
    ln -sf "$p:arm64.list" "$stage/var/lib/dpkg/info/$p.list"
    printf 'Package: %s\nStatus: install ok installed\nArchitecture: arm64\nVersion: %s\n\n' \
      "$p" "$(dpkg-deb -f "$deb" Version)" >> "$stage/var/lib/dpkg/status"
  done
  # merged /usr, as on the host: /bin, /sbin, /lib are links into /usr
  for d in bin sbin lib; do
    if [[ -d "$stage/$d" && ! -L "$stage/$d" ]]; then
      mkdir -p "$stage/usr/$d"
      cp -a "$stage/$d/." "$stage/usr/$d/"
      rm -rf "${stage:?}/$d"
    fi
    [[ -e "$stage/$d" ]] || ln -s "usr/$d" "$stage/$d"
  done
  printf '%s\n' "$stamp" > "$stage/.nixery-stamp"
  rm -rf "$ARM64_CACHE/root.old"
  [[ -d "$ARM64_CACHE/root" ]] && mv "$ARM64_CACHE/root" "$ARM64_CACHE/root.old"
  mv "$stage" "$ARM64_CACHE/root"
  rm -rf "$ARM64_CACHE/root.old"
fi

# 3. qemu-aarch64 in binfmt_misc.
binfmt_warn() {
  echo "setup: cannot register qemu-aarch64 with binfmt_misc ($1): this machine builds no aarch64-linux images; amd64 is not affected" >&2
  exit 0
}
if [[ ! -e "$BINFMT/register" ]]; then
  $SUDO mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || binfmt_warn "mounting $BINFMT failed"
fi
if [[ -e "$BINFMT/qemu-aarch64" ]]; then
  if ! head -1 "$BINFMT/qemu-aarch64" | grep -qx enabled; then
    echo 1 | $SUDO tee "$BINFMT/qemu-aarch64" >/dev/null || binfmt_warn "enabling the existing entry failed"
  fi
  grep -q '^flags:.*F' "$BINFMT/qemu-aarch64" ||
    echo "setup: note: the qemu-aarch64 entry already registered has no F flag; containers may not run arm64 programs" >&2
else
  line=$(grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | head -1)
  flags=${line##*:}
  [[ $flags == *F* ]] || line="${line}F"
  printf '%s' "$line" | $SUDO tee "$BINFMT/register" >/dev/null 2>&1 || binfmt_warn "writing $BINFMT/register failed"
  echo "setup: registered qemu-aarch64 with binfmt_misc"
fi
