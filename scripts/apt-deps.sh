#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt-packages.txt whose
# command is missing (make deps). Needs root or sudo; runs `apt-get update`
# once, only when something is missing.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
while read -r pkg cmd _; do
  case "$pkg" in ''|'#'*) continue ;; esac
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "$cmd" ]; then
    missing+=("$pkg")
  fi
done < apt-packages.txt
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "apt-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
