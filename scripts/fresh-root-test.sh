#!/usr/bin/env bash
# The fresh-root test (issue 9): does the project work from nothing on a
# pristine Debian bookworm machine?
#
# 1. Makes a fresh root (scripts/fresh-root.sh: cached mmdebstrap base + Node 20,
#    npm config, CA certificates, resolv.conf/hosts + `git archive` of the
#    project) and, inside it, runs the README's `npm start` in the background,
#    pulls shell/hello with curl, checks every blob against its digest and that
#    a layer holds bin/hello, and stops the server with SIGTERM (exit 0)
#    (scripts/fresh-root-check.sh).
# 2. Makes another fresh root and runs the README's `npm test` inside it.
# Prints PASS/FAIL lines with times; exits non-zero when anything failed.
#
#   scripts/fresh-root-test.sh [--ref REF | --worktree] [--no-npm-test] [--same-root] [--keep]
#     --ref REF      project revision to test (default HEAD); --worktree: the
#                    working tree as it is, uncommitted changes included
#     --no-npm-test  only the npm start check
#     --same-root    run npm test in the root of the npm start check (saves
#                    its set-up) instead of a second fresh one
#     --keep         keep the roots (their paths are printed)
# Environment: NIXERY_FRESH_ROOT_NPM_TEST_TIMEOUT (seconds, default 2400), and
# those of scripts/fresh-root.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD
FRESH_ROOT=$HERE/scripts/fresh-root.sh

source_args=() npm_test=1 same_root=0 keep=0
while (( $# )); do
  case $1 in
    --ref) source_args=(--ref "$2"); shift 2 ;;
    --worktree) source_args=(--worktree); shift ;;
    --no-npm-test) npm_test=0; shift ;;
    --same-root) same_root=1; shift ;;
    --keep) keep=1; shift ;;
    *) echo "fresh-root-test: unknown option $1" >&2; exit 2 ;;
  esac
done
npm_test_timeout=${NIXERY_FRESH_ROOT_NPM_TEST_TIMEOUT:-2400}
tmp_base=${NIXERY_FRESH_ROOT_TMP:-/var/tmp}

say() { printf 'fresh-root-test: %s\n' "$*"; }
results=()
record() { results+=("$*"); echo "$*"; }

# Children run in the background so a TERM to this script is handled at once;
# the trap stops the running child (whose own trap ends its namespace) and
# removes the roots.
child= roots=()
on_exit() {
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  local r
  for r in "${roots[@]}"; do
    [[ -d $r ]] || continue
    if (( keep )); then say "kept root $r"; else "$FRESH_ROOT" remove "$r" || say "could not remove $r"; fi
  done
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
run_child() { # CMD... ; returns its status
  "$@" &
  child=$!
  local status=0
  wait "$child" || status=$?
  child=
  return "$status"
}

new_root() { # prints the new root's path
  local r
  r=$(mktemp -d "$tmp_base/nixery-fresh-root.XXXXXX")
  rmdir "$r"
  echo "$r"
}

total_start=$SECONDS
status=0

# The base: cached, or built now.
base_start=$SECONDS
base_state=cached
tarball=${NIXERY_FRESH_ROOT_CACHE:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/nixery-fresh-root}}
tarball=${tarball:-/var/cache/nixery-fresh-root}/bookworm-minbase.tar
before=$(stat -c %Y "$tarball" 2>/dev/null || echo none)
run_child "$FRESH_ROOT" base > /dev/null
[[ $(stat -c %Y "$tarball" 2>/dev/null || echo none) != "$before" ]] && base_state=built
record "INFO: base root $base_state ($((SECONDS - base_start)) s)"

# 1. npm start + pull.
root1=$(new_root)
roots+=("$root1")
phase_start=$SECONDS
run_child "$FRESH_ROOT" create "$root1" "${source_args[@]}" || { record "FAIL: could not create a root"; exit 1; }
install -m 755 "$HERE/scripts/fresh-root-check.sh" "$root1/root/fresh-root-check.sh"
record "INFO: root created in $((SECONDS - phase_start)) s"
phase_start=$SECONDS
if run_child "$FRESH_ROOT" enter "$root1" -- bash /root/fresh-root-check.sh; then
  record "PASS: npm start + pull of shell/hello in a fresh root ($((SECONDS - phase_start)) s)"
  [[ -f $root1/root/first-start.txt ]] && record "INFO: $(cat "$root1/root/first-start.txt")"
else
  record "FAIL: npm start + pull of shell/hello in a fresh root ($((SECONDS - phase_start)) s)"
  status=1
fi

# 2. npm test.
if (( npm_test )); then
  phase_start=$SECONDS
  if (( same_root )); then
    root2=$root1
  else
    root2=$(new_root)
    roots+=("$root2")
    run_child "$FRESH_ROOT" create "$root2" "${source_args[@]}" || { record "FAIL: could not create a root"; exit 1; }
  fi
  say "running 'npm test' in $root2 (at most $npm_test_timeout s)"
  if run_child timeout -k 30 "$npm_test_timeout" "$FRESH_ROOT" enter "$root2" -- npm test; then
    record "PASS: npm test in a fresh root ($((SECONDS - phase_start)) s)"
  else
    rc=$?
    record "FAIL: npm test in a fresh root (exit $rc$( ((rc == 124)) && echo ', timed out'), $((SECONDS - phase_start)) s)"
    status=1
  fi
fi

echo "==== fresh-root test summary"
printf '%s\n' "${results[@]}"
if (( status )); then
  echo "FAIL: fresh-root test ($((SECONDS - total_start)) s)"
else
  echo "PASS: fresh-root test ($((SECONDS - total_start)) s)"
fi
exit "$status"
