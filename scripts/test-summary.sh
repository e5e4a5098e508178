#!/usr/bin/env bash
# Prints the per-package timing summary of a `go test` log, slowest first,
# and the packages' total (make test calls it at the end).
set -euo pipefail
log=${1:?usage: test-summary.sh GO_TEST_LOG}
times() { awk '($1 == "ok" || $1 == "FAIL") && $3 ~ /^[0-9.]+s$/ { t = $3; sub(/s$/, "", t); printf "%9.1f s  %-4s %s\n", t, $1, $2 }' "$log"; }
echo
echo "per-package test time, slowest first:"
times | sort -rn | head -25
times | awk '{ sum += $1; n++ } END { printf "%9.1f s  in all, %d packages (go test runs several at once: make test'"'"'s TEST_P)\n", sum, n }'
