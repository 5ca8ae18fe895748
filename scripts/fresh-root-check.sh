#!/usr/bin/env bash
# The `npm start` check, run inside a fresh root (see scripts/fresh-root-test.sh
# and bench/fresh-starts.sh): starts the README's `npm start` in the background
# (its own process group, PORT on 127.0.0.1), waits until /v2/ answers, pulls
# shell/hello with curl (the manifest with Docker schema 2 Accept, then every
# blob), checks each blob's sha256 against its digest and that a layer tarball
# holds bin/hello, then stops the server with SIGTERM and expects exit 0.
# Prints PASS/FAIL lines; exits 0 only when every check passed.
#
#   fresh-root-check.sh [--project DIR] [--port N] [--log FILE] [--wipe] [--ready-timeout S]
#     --wipe   first empties the Nix store (/nix) and the project's data dir,
#              for repeated starts on one prepared root
set -uo pipefail

project=/root/nixery
port=
logfile=/root/npm-start.log
wipe=0
ready_timeout=1200
image=shell/hello
while (( $# )); do
  case $1 in
    --project) project=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --log) logfile=$2; shift 2 ;;
    --wipe) wipe=1; shift ;;
    --ready-timeout) ready_timeout=$2; shift 2 ;;
    *) echo "fresh-root-check: unknown option $1" >&2; exit 2 ;;
  esac
done

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
note() { echo "fresh-root-check: $*"; }

cd "$project" || { fail "no project at $project"; exit 1; }
if [[ -z $port ]]; then
  # A free port on loopback, asked of the kernel (node is all a fresh machine has).
  port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
fi
if (( wipe )); then
  rm -rf /nix /root/.cache/nix "$project/data"
  note "wiped /nix, ~/.cache/nix and $project/data"
fi

work=$(mktemp -d /tmp/fresh-root-check.XXXXXX)
server=
stop_status=
stop_server() { # SIGTERM, SIGKILL after GRACE s; the exit status goes to $stop_status
  local pid=$1 grace=$2 i
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  wait "$pid"
  stop_status=$?
}
cleanup() {
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
    kill -KILL -- "-$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. npm start, exactly as the README says, in the background.
start=$SECONDS
note "starting 'npm start' (PORT=$port HOST=127.0.0.1), log in $logfile"
PORT=$port HOST=127.0.0.1 setsid npm start > "$logfile" 2>&1 < /dev/null &
server=$!
base=http://127.0.0.1:$port

ready=0
while (( SECONDS - start < ready_timeout )); do
  if ! kill -0 "$server" 2>/dev/null; then break; fi
  if [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/v2/" 2>/dev/null) == 200 ]]; then ready=1; break; fi
  sleep 1
done
if (( ready )); then
  pass "npm start answers /v2/ after $((SECONDS - start)) s"
else
  fail "npm start did not answer /v2/ within ${ready_timeout} s (server $(kill -0 "$server" 2>/dev/null && echo running || echo exited))"
  echo "---- tail of $logfile"; tail -n 60 "$logfile"; echo "----"
  exit 1
fi

# 2. The first pull of shell/hello: the manifest, then every blob.
pull_start=$SECONDS
code=$(curl -sS -o "$work/manifest" -D "$work/headers" -w '%{http_code}' \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "$base/v2/$image/manifests/latest" 2>"$work/curl.err")
if [[ $code == 200 ]]; then
  pass "GET /v2/$image/manifests/latest: 200 after $((SECONDS - pull_start)) s"
else
  fail "GET /v2/$image/manifests/latest: HTTP ${code:-none} after $((SECONDS - pull_start)) s: $(head -c 3000 "$work/manifest" 2>/dev/null) $(cat "$work/curl.err")"
fi

if [[ $code == 200 ]]; then
  header_digest=$(tr -d '\r' < "$work/headers" | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')
  body_digest=sha256:$(sha256sum "$work/manifest" | cut -c1-64)
  if [[ $header_digest == "$body_digest" ]]; then
    pass "manifest digest $body_digest matches Docker-Content-Digest"
  else
    fail "manifest is $body_digest but Docker-Content-Digest says '${header_digest}'"
  fi
  # mediaType, config digest and layer digests, one per line ("config D" / "layer D").
  if ! node -e '
      const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      if (m.mediaType !== "application/vnd.docker.distribution.manifest.v2+json") throw new Error("mediaType " + m.mediaType);
      console.log("config " + m.config.digest);
      for (const l of m.layers) console.log("layer " + l.digest);' "$work/manifest" > "$work/blobs" 2>"$work/parse.err"; then
    fail "manifest is not a Docker schema 2 manifest: $(cat "$work/parse.err" | tail -n 3)"
  fi
  blobs=0 bad=0 hello_layer=
  while read -r kind digest; do
    blobs=$((blobs + 1))
    hex=${digest#sha256:}
    bcode=$(curl -sS -L -o "$work/blob" -w '%{http_code}' "$base/v2/$image/blobs/$digest" 2>>"$work/curl.err")
    got=$(sha256sum "$work/blob" | cut -c1-64)
    if [[ $bcode != 200 || $got != "$hex" ]]; then
      fail "blob $digest ($kind): HTTP $bcode, content sha256 $got"
      bad=$((bad + 1))
      continue
    fi
    if [[ $kind == layer && -z $hello_layer ]] && tar -tzf "$work/blob" 2>/dev/null | grep -qE '(^|/)bin/hello$'; then
      hello_layer=$digest
    fi
  done < "$work/blobs"
  if (( blobs > 1 && bad == 0 )); then
    pass "all $blobs blobs (config and $((blobs - 1)) layers) match their sha256 digests"
  elif (( bad == 0 )); then
    fail "the manifest lists no layers"
  fi
  if [[ -n $hello_layer ]]; then
    pass "layer $hello_layer holds bin/hello (tar -tz)"
  else
    fail "no layer tarball holds bin/hello"
  fi
fi

# The first-start figure (issue 15): from `npm start` to the end of the first
# pull, with and without the Debian packages set-up installed (its own
# "setup: apt took N s" line; none when nothing was missing).
if (( failures == 0 )); then
  first=$((SECONDS - start))
  apt=$(sed -n 's/^setup: apt took \([0-9]*\) s$/\1/p' "$logfile" | tail -n 1)
  npm_ci=$(sed -n 's/^setup: npm ci took \([0-9]*\) s$/\1/p' "$logfile" | tail -n 1)
  figure="first start: npm start to first pull done in $first s; apt ${apt:-0} s; without apt $((first - ${apt:-0})) s (npm ci ${npm_ci:-0} s)"
  note "$figure"
  echo "$figure" > "${NIXERY_FIRST_START_FILE:-/root/first-start.txt}"
fi

# 3. Clean stop: SIGTERM to npm start's process group, exit status 0.
stop_start=$SECONDS
stop_server "$server" 60
status=$stop_status
if [[ $status == 0 ]]; then
  pass "npm start exited 0 after SIGTERM ($((SECONDS - stop_start)) s)"
else
  fail "npm start exited with status $status after SIGTERM"
fi
server=

if (( failures )); then
  echo "---- tail of $logfile"; tail -n 60 "$logfile"; echo "----"
  echo "FAIL: npm start check ($failures failed)"
  exit 1
fi
echo "PASS: npm start check ($((SECONDS - start)) s)"
