#!/usr/bin/env bash
# Time to first lock: from `git clone` to the first successful acquire,
# following the README (`make run`, then the first curl), with an empty Go
# module cache and an empty build cache. Prints the seconds at each step.
# Usage: bash scripts/first-run.sh [REPO] (default: this checkout)
set -euo pipefail
repo=${1:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)}
work=$(mktemp -d)
port=${PORT:-18080}
export GOMODCACHE=$work/gomod GOCACHE=$work/gocache GOFLAGS=-modcacherw
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
t0=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) - $t0" | bc; }
git clone -q "$repo" "$work/hasp"
echo "clone: $(elapsed) s"
cd "$work/hasp"
make run ARGS="--listen 127.0.0.1:$port" >"$work/run.log" 2>&1 &
pid=$!
until curl -sf -o /dev/null "http://127.0.0.1:$port/v1/health"; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/run.log"; exit 1; }
  sleep 0.2
done
echo "listening: $(elapsed) s"
curl -sf -d '{"name":"first","ttl_ms":10000}' "http://127.0.0.1:$port/v1/locks/acquire"
echo
echo "first lock: $(elapsed) s"
