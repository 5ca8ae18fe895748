#!/usr/bin/env bash
# Runs the whole test suite with node's test runner: unit, integration, end-to-end.
# Pass file paths to run only those.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
if (( $# )); then
  files=("$@")
else
  mapfile -t files < <(find test/unit test/integration test/e2e -name '*.test.ts' 2>/dev/null | sort)
fi
export TSX_TSCONFIG_PATH=test/tsconfig.json
exec node --import tsx --test --test-concurrency=1 --test-timeout=900000 --test-reporter=spec "${files[@]}"
