#!/usr/bin/env bash
# Pristine Debian bookworm roots: what a fresh machine of this kind looks like,
# for testing that the project works from nothing (issue 9).
#
#   scripts/fresh-root.sh base
#       Prints the path of the cached base tarball, building it first when it is
#       missing, older than a week, or made from other apt settings: mmdebstrap
#       --variant=minbase --include=ca-certificates,git,curl bookworm, with this
#       machine's own apt sources and Acquire:: settings.
#   scripts/fresh-root.sh create DIR [--ref REF | --worktree]
#       Unpacks the base into DIR (which must not exist) and adds only what a
#       fresh machine of this kind has besides: Node 20 at /usr/bin/node with the
#       npm it ships (/usr/lib/node_modules, /usr/include/node), the npm config
#       files, the extra CA certificates (update-ca-certificates is run inside),
#       /etc/resolv.conf and /etc/hosts. Then the project: `git archive` of REF
#       (default HEAD), or with --worktree the working tree as it is (tracked and
#       untracked, not ignored, files), at /root/nixery.
#   scripts/fresh-root.sh enter DIR [--cwd DIR] [--env NAME=VALUE]... -- CMD [ARG]...
#       Runs CMD inside DIR (default working directory /root/nixery) with a clean
#       environment (HOME, PATH, TERM, NODE_EXTRA_CA_CERTS and proxy settings of
#       this machine) and exits with its status. See "How a root is entered".
#   scripts/fresh-root.sh remove DIR
#       Deletes a root made by `create` (refuses while anything is mounted in it).
#   scripts/fresh-root.sh run [--ref REF | --worktree] [--keep] -- CMD [ARG]...
#       create + enter + remove in a temporary directory.
#
# How a root is entered: `unshare --mount --pid --fork --kill-child` makes new
# mount and pid namespaces (mounts private, so nothing reaches the host); in
# them the root is bind-mounted onto itself (pivot_root needs a mount point),
# /proc is mounted, /sys and /dev are rbind-mounted, /run and /dev/shm get
# tmpfs, then pivot_root makes it / and the old root is detached. Plain chroot
# is not enough: Nix re-enters its saved mount namespace to run git, and the
# Docker engine remounts /. CMD's process is the namespace's first process
# (pid 1): when it ends, the kernel kills everything else inside, and the
# mounts go with the namespace. If this script is interrupted or fails, its
# trap SIGKILLs unshare, which SIGKILLs pid 1 (--kill-child).
#
# Environment: NIXERY_FRESH_ROOT_CACHE (cache dir; default
# $XDG_CACHE_HOME/nixery-fresh-root or /var/cache/nixery-fresh-root),
# NIXERY_FRESH_ROOT_MAX_AGE_DAYS (default 7), NIXERY_FRESH_ROOT_TMP (where `run`
# makes roots; default /var/tmp). Needs root; installs mmdebstrap if missing.
set -euo pipefail

SELF=$(readlink -f "$0")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
SUITE=bookworm
INCLUDE=ca-certificates,git,curl
PROJECT_DIR=/root/nixery
CACHE_DIR=${NIXERY_FRESH_ROOT_CACHE:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/nixery-fresh-root}}
CACHE_DIR=${CACHE_DIR:-/var/cache/nixery-fresh-root}
MAX_AGE_DAYS=${NIXERY_FRESH_ROOT_MAX_AGE_DAYS:-7}

log() { printf 'fresh-root: %s\n' "$*" >&2; }
die() { printf 'fresh-root: error: %s\n' "$*" >&2; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

# --- the base tarball ---------------------------------------------------------

# The machine's apt sources, as files mmdebstrap pastes into the root's
# sources list: one file of deb822 stanzas, one of one-line entries.
collect_apt_sources() { # OUTDIR
  local out=$1 f
  : > "$out/sources.deb822"
  : > "$out/sources.list"
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    cat "$f" >> "$out/sources.deb822"
    printf '\n' >> "$out/sources.deb822"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    grep -E '^\s*deb(-src)?\s' "$f" >> "$out/sources.list" || true
  done
}

# The machine's own Acquire:: settings (one-line options in its apt
# configuration files; IndexTargets come with packages such as appstream, not
# from the machine's settings).
collect_acquire_options() { # OUTFILE
  local out=$1 f
  : > "$out"
  for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
    [[ -f $f ]] || continue
    grep -hE '^\s*Acquire::[^{}]*;\s*$' "$f" | grep -v 'Acquire::IndexTargets' >> "$out" || true
  done
}

# Builds (if needed) and prints the cached base tarball.
ensure_base() {
  need_root
  mkdir -p "$CACHE_DIR"
  local tarball="$CACHE_DIR/$SUITE-minbase.tar" work key
  exec 9>"$CACHE_DIR/.lock"
  flock 9 # one build at a time; others wait and reuse it
  work=$(mktemp -d "$CACHE_DIR/.work.XXXXXX")
  BASE_WORK=$work
  collect_apt_sources "$work"
  collect_acquire_options "$work/acquire.conf"
  key=$( { echo "$SUITE $INCLUDE minbase"; cat "$work/sources.deb822" "$work/sources.list" "$work/acquire.conf"; } | sha256sum | cut -c1-64)
  if [[ -f $tarball && -f $tarball.key && $(cat "$tarball.key") == "$key" ]] &&
     [[ -n $(find "$tarball" -mtime -"$MAX_AGE_DAYS" 2>/dev/null) ]]; then
    rm -rf "$work"
    exec 9>&-
    echo "$tarball"
    return
  fi
  if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
  fi
  local mirrors=()
  [[ -s $work/sources.deb822 ]] && mirrors+=("$work/sources.deb822")
  [[ -s $work/sources.list ]] && mirrors+=("$work/sources.list")
  (( ${#mirrors[@]} )) || die "no apt sources found on this machine"
  log "building the base root with mmdebstrap (minbase + $INCLUDE) into $tarball"
  local start=$SECONDS
  mmdebstrap --quiet --variant=minbase --include="$INCLUDE" --aptopt="$work/acquire.conf" \
    "$SUITE" "$work/base.tar" "${mirrors[@]}" >&2
  mv "$work/base.tar" "$tarball"
  echo "$key" > "$tarball.key"
  rm -rf "$work"
  log "base built in $((SECONDS - start)) s ($(du -h "$tarball" | cut -f1))"
  exec 9>&-
  echo "$tarball"
}

# --- creating a root ----------------------------------------------------------

copy_host_paths() { # ROOT PATH... (paths that exist are copied as they are, symlinks kept)
  local root=$1 p rel=()
  shift
  for p in "$@"; do [[ -e $p || -L $p ]] && rel+=("${p#/}"); done
  (( ${#rel[@]} )) && tar -C / -cf - "${rel[@]}" | tar -C "$root" -xf -
  return 0
}

create_root() { # DIR [--ref REF | --worktree]
  need_root
  local root=$1 ref=HEAD worktree=0
  shift
  while (( $# )); do
    case $1 in
      --ref) ref=$2; shift 2 ;;
      --worktree) worktree=1; shift ;;
      *) die "create: unknown option $1" ;;
    esac
  done
  [[ -e $root ]] && die "create: $root already exists"
  local base
  base=$(ensure_base)
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
  tar -C "$root" -xf "$base"

  # Node 20 and the npm it ships, where the host has them.
  copy_host_paths "$root" /usr/bin/node /usr/bin/npm /usr/bin/npx /usr/bin/corepack \
    /usr/lib/node_modules /usr/include/node
  [[ -x $root/usr/bin/node ]] || die "create: this machine has no /usr/bin/node to copy"
  # npm configuration (registry, CA file, nodedir...).
  copy_host_paths "$root" /etc/npmrc /usr/etc/npmrc
  [[ -f $HOME/.npmrc ]] && cp "$HOME/.npmrc" "$root/root/.npmrc"
  # Extra CA certificates, made part of the root's bundle inside it.
  if [[ -d /usr/local/share/ca-certificates ]]; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  fi
  chroot "$root" /usr/sbin/update-ca-certificates >/dev/null
  # Name resolution: the package mirrors are found through these.
  rm -f "$root/etc/resolv.conf" "$root/etc/hosts"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  cp -L /etc/hosts "$root/etc/hosts"

  # The project.
  mkdir -p "$root$PROJECT_DIR"
  if (( worktree )); then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
      tar --null -T - -cf -) | tar -C "$root$PROJECT_DIR" -xf -
    log "root $root: project from the working tree"
  else
    git -C "$REPO" archive --format=tar "$ref" | tar -C "$root$PROJECT_DIR" -xf -
    log "root $root: project from $(git -C "$REPO" rev-parse --short "$ref") ($ref)"
  fi
}

# --- entering a root ----------------------------------------------------------

# Inside the new namespaces, still on the host's file system: mount, pivot, exec.
inside() { # ROOT CWD ENVFILE CMD...
  local root=$1 cwd=$2 envfile=$3
  shift 3
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mkdir -p "$root/dev/shm" "$root/run"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
  mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
  mkdir -p "$root/.old-root"
  cd "$root"
  pivot_root . .old-root
  cd /
  umount -l /.old-root
  rmdir /.old-root
  local envs=()
  mapfile -d '' -t envs < "$envfile"
  rm -f "$envfile"
  cd "$cwd"
  exec /usr/bin/env -i "${envs[@]}" "$@"
}

UNSHARE_PID=
stop_unshare() {
  if [[ -n $UNSHARE_PID ]] && kill -0 "$UNSHARE_PID" 2>/dev/null; then
    log "stopping the root's namespace (unshare pid $UNSHARE_PID)"
    # unshare ignores INT and TERM while it waits for its child, so SIGKILL it:
    # --kill-child then SIGKILLs pid 1 inside, which ends the whole namespace.
    kill -KILL "$UNSHARE_PID" 2>/dev/null || true
    wait "$UNSHARE_PID" 2>/dev/null || true
  fi
  UNSHARE_PID=
}

enter_root() { # DIR [--cwd DIR] [--env N=V]... -- CMD...
  need_root
  local root cwd=$PROJECT_DIR envs=()
  root=$(cd "$1" && pwd)
  shift
  while (( $# )); do
    case $1 in
      --cwd) cwd=$2; shift 2 ;;
      --env) envs+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) die "enter: unknown option $1" ;;
    esac
  done
  (( $# )) || die "enter: no command"
  [[ -x $root/usr/bin/env ]] || die "enter: $root is not a root made by create"
  # The clean environment of a fresh login, plus this machine's CA and proxy settings.
  local envfile
  envfile=$(mktemp "$root/tmp/.fresh-root-env.XXXXXX")
  # NUL-separated, so values may hold newlines (NIX_CONFIG does).
  local v
  {
    printf '%s\0' HOME=/root USER=root LOGNAME=root \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "TERM=${TERM:-dumb}"
    for v in NODE_EXTRA_CA_CERTS http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
      [[ -n ${!v:-} ]] && printf '%s\0' "$v=${!v}"
    done
    for v in "${envs[@]}"; do printf '%s\0' "$v"; done
  } > "$envfile"
  unshare --mount --pid --fork --kill-child --propagation private -- \
    "$SELF" __inside "$root" "$cwd" "${envfile#"$root"}" "$@" &
  UNSHARE_PID=$!
  local status=0
  wait "$UNSHARE_PID" || status=$?
  UNSHARE_PID=
  return "$status"
}

# Mount points at or below DIR in this (the host's) mount namespace.
mounts_under() { # DIR
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

remove_root() { # DIR
  local root
  root=$(cd "$1" && pwd)
  [[ $root != / && -x $root/usr/bin/env ]] || die "remove: $root is not a root made by create"
  if [[ -n $(mounts_under "$root") ]]; then
    die "remove: still mounted under $root: $(mounts_under "$root" | tr '\n' ' ')"
  fi
  rm -rf --one-file-system "$root"
}

run_in_fresh_root() { # [--ref REF | --worktree] [--keep] -- CMD...
  local create_args=() keep=0
  while (( $# )); do
    case $1 in
      --ref) create_args+=(--ref "$2"); shift 2 ;;
      --worktree) create_args+=(--worktree); shift ;;
      --keep) keep=1; shift ;;
      --) shift; break ;;
      *) die "run: unknown option $1" ;;
    esac
  done
  local root status=0
  root=$(mktemp -d "${NIXERY_FRESH_ROOT_TMP:-/var/tmp}/nixery-fresh-root.XXXXXX")
  rmdir "$root"
  RUN_ROOT=$root RUN_KEEP=$keep
  create_root "$root" "${create_args[@]}"
  enter_root "$root" -- "$@" || status=$?
  return "$status"
}

# On any exit (normal, error, INT, TERM): stop what runs inside, remove the
# temporary root of `run`.
RUN_ROOT= RUN_KEEP=0 BASE_WORK=
on_exit() {
  stop_unshare
  [[ -n $BASE_WORK ]] && rm -rf "$BASE_WORK"
  if [[ -n $RUN_ROOT && -d $RUN_ROOT ]]; then
    if [[ $RUN_KEEP == 1 ]]; then log "kept $RUN_ROOT"; else remove_root "$RUN_ROOT" || log "could not remove $RUN_ROOT"; fi
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case ${1:-} in
  base) ensure_base ;;
  create) shift; create_root "$@" ;;
  enter) shift; enter_root "$@" ;;
  remove) shift; remove_root "$@" ;;
  run) shift; run_in_fresh_root "$@" ;;
  __inside) shift; inside "$@" ;;
  *) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
