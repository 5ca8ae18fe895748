#!/usr/bin/env bash
# Fresh starts with an empty Nix store, many in a row (issue 9, "20 fresh-root
# starts"): prepares one fresh root (scripts/fresh-root.sh) with the project's
# set-up done (apt packages, npm deps, build), then N times: wipes /nix,
# ~/.cache/nix and the project's data dir, enters the root, runs `npm start`,
# makes the first pull of shell/hello (manifest + every blob, digests checked)
# while the popularity job's start-up builds run alongside, and stops the
# server (scripts/fresh-root-check.sh). Prints one line per start and how many
# first pulls succeeded; every start's log is kept in the log dir.
#
#   bench/fresh-starts.sh [--starts N] [--ref REF | --worktree] [--root DIR] [--keep] [--log-dir DIR]
#     --starts N   how many starts (default 20)
#     --root DIR   reuse (or make) the prepared root at DIR, kept afterwards
#     --log-dir    where per-start logs go (default test-artifacts/fresh-starts)
#     --env N=V    environment for the starts (repeatable), e.g. an operator's
#                  NIX_CONFIG="build-users-group = nixbld"
# Exits 0 when every first pull succeeded and every start stopped cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD
FRESH_ROOT=$HERE/scripts/fresh-root.sh

starts=20 source_args=() root= keep=0 log_dir=$HERE/test-artifacts/fresh-starts env_args=()
while (( $# )); do
  case $1 in
    --starts) starts=$2; shift 2 ;;
    --ref) source_args=(--ref "$2"); shift 2 ;;
    --worktree) source_args=(--worktree); shift ;;
    --root) root=$2; keep=1; shift 2 ;;
    --keep) keep=1; shift ;;
    --log-dir) log_dir=$2; shift 2 ;;
    --env) env_args+=(--env "$2"); shift 2 ;;
    *) echo "fresh-starts: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$log_dir"

child= made_root=0
on_exit() {
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if [[ -n $root && -d $root ]]; then
    if (( keep )); then echo "fresh-starts: kept root $root"; elif (( made_root )); then "$FRESH_ROOT" remove "$root"; fi
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
run_child() { "$@" & child=$!; local s=0; wait "$child" || s=$?; child=; return "$s"; }

# 1. One prepared root.
if [[ -z $root ]]; then
  root=$(mktemp -d "${NIXERY_FRESH_ROOT_TMP:-/var/tmp}/nixery-fresh-starts.XXXXXX")
  rmdir "$root"
fi
if [[ ! -d $root ]]; then
  made_root=1
  t=$SECONDS
  run_child "$FRESH_ROOT" create "$root" "${source_args[@]}"
  echo "fresh-starts: root $root created ($((SECONDS - t)) s)"
fi
install -m 755 "$HERE/scripts/fresh-root-check.sh" "$root/root/fresh-root-check.sh"
t=$SECONDS
run_child "$FRESH_ROOT" enter "$root" -- bash scripts/setup.sh > "$log_dir/setup.log" 2>&1 ||
  { echo "fresh-starts: set-up failed, see $log_dir/setup.log"; tail -n 30 "$log_dir/setup.log"; exit 1; }
echo "fresh-starts: set-up done ($((SECONDS - t)) s): apt packages, npm deps and build in place"

# 2. N starts, each with an empty store.
ok=0 failed=0 clean=0 signal9=0 pull_times=()
for ((i = 1; i <= starts; i++)); do
  out=$log_dir/start-$i.out
  t=$SECONDS
  run_child "$FRESH_ROOT" enter "$root" "${env_args[@]}" -- bash /root/fresh-root-check.sh --wipe --log "/root/start-$i.log" > "$out" 2>&1 || true
  # The first pull: manifest 200, every blob matches its digest, a layer holds bin/hello.
  if grep -q '^PASS: GET .*manifests.*: 200' "$out" && grep -q '^PASS: all .* blobs' "$out" && grep -q '^PASS: layer .* holds bin/hello' "$out"; then
    ok=$((ok + 1))
    result=PASS
  else
    result=FAIL
  fi
  stop=ok
  if grep -q '^PASS: npm start exited 0 after SIGTERM' "$out"; then clean=$((clean + 1)); else stop="NOT CLEAN"; fi
  cp "$root/root/start-$i.log" "$log_dir/start-$i.log" 2>/dev/null || true
  rm -f "$root/root/start-$i.log"
  pull=$(sed -n 's/^PASS: GET .*manifests.*: 200 after \([0-9]*\) s$/\1/p' "$out")
  [[ -n $pull ]] && pull_times+=("$pull")
  # Did the popularity job's builds run alongside the first pull's build?
  overlap=$(node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
    let pc0, pc1, b0, b1;
    for (const l of lines) {
      let j; try { j = JSON.parse(l); } catch { continue; }
      if (j.msg === "popcount: counting references") pc0 ??= j.time;
      if (/^popcount: (published|run failed)/.test(j.msg)) pc1 ??= j.time;
      if (j.msg === "build started") b0 ??= j.time;
      if (j.msg === "build finished" || j.msg === "build failed") b1 ??= j.time;
    }
    console.log(pc0 && b0 && b0 < (pc1 ?? Infinity) && pc0 < (b1 ?? Infinity) ? "yes" : "no");' "$log_dir/start-$i.log" 2>/dev/null || echo "?")
  killed=$(grep -c 'signal 9' "$log_dir/start-$i.log" 2>/dev/null || true)
  (( killed )) && signal9=$((signal9 + 1))
  why=$(grep -m1 '^FAIL' "$out" | cut -c1-300 || true)
  [[ $result == FAIL ]] && failed=$((failed + 1))
  printf 'start %2d: first pull %s  %3d s in all, first pull %s s, popularity builds alongside: %s, log lines with "signal 9": %d, stop on SIGTERM: %s %s\n' \
    "$i" "$result" "$((SECONDS - t))" "${pull:--}" "$overlap" "${killed:-0}" "$stop" "$why"
done

echo "==== fresh starts with an empty Nix store"
echo "first pulls of shell/hello that succeeded: $ok/$starts"
echo "starts whose log mentions a builder killed by signal 9: $signal9/$starts"
echo "starts that stopped cleanly on SIGTERM (exit 0): $clean/$starts"
if (( ${#pull_times[@]} )); then
  printf '%s\n' "${pull_times[@]}" | sort -n | awk '{ a[NR] = $1; s += $1 } END { printf "first pull time (manifest request, s): min %d, median %d, max %d, mean %.1f\n", a[1], a[int((NR + 1) / 2)], a[NR], s / NR }'
fi
(( failed == 0 && clean == starts ))
