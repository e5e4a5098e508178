#!/usr/bin/env bash
# Binary weight: the size of each artifact as shipped (stripped, -trimpath),
# and what dominates it: the symbol sizes of an unstripped build summed by
# module (go tool nm -size). Usage: bash scripts/binary-weight.sh [TOP]
set -euo pipefail
cd "$(dirname "$0")/.."
top=${1:-6}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
artifact() { # name tags pkg [GOOS/GOARCH]
  local name=$1 tags=$2 pkg=$3
  CGO_ENABLED=0 GOOS=linux GOARCH=${4:-amd64} go build -tags "$tags" -trimpath -ldflags='-s -w' -o "$out/$name" "$pkg"
  CGO_ENABLED=0 GOOS=linux GOARCH=${4:-amd64} go build -tags "$tags" -trimpath -o "$out/$name.sym" "$pkg"
  printf '%-34s %6.1f MB stripped; largest by symbol size: ' "$name (${4:-amd64})" "$(echo "$(stat -c %s "$out/$name") / 1000000" | bc -l)"
  go tool nm -size "$out/$name.sym" | python3 -c '
import re, sys, collections
top = int(sys.argv[1]); sizes = collections.Counter()
for line in sys.stdin:
    f = line.split()
    if len(f) < 4 or f[2] not in "TtRrDd" or int(f[1]) > 16000000:  # text, read-only data, data (not bss, nor the 32 MB FIPS DRBG buffer that nm reports as data)
        continue
    sym = f[3].split("(")[0]
    m = re.match(r"(?:go:|type:|runtime\.|\w+\.\.)?([A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*)", sym)
    path = m.group(1) if m else sym
    parts = path.split("/")
    if "." in parts[0]:  # a module: domain/owner/repo
        mod = "/".join(parts[:3]) if parts[0] in ("github.com", "go.opentelemetry.io", "go.etcd.io", "cloud.google.com", "google.golang.org", "golang.org") else "/".join(parts[:2])
    else:
        mod = "std"
    sizes[mod] += int(f[1])
print(", ".join("%s %.1f MB" % (m, s / 1e6) for m, s in sizes.most_common(top)))
' "$top"
  echo
}
artifact hasp "" ./cmd/hasp
artifact hasp-lite hasp_lite ./cmd/hasp
artifact bootstrap lambda.norpc,hasp_lambda ./functions/aws arm64
artifact handler "" ./functions/azure
artifact gcp-function "" ./functions/gcp/cmd/hasp-gcp-local
