#!/usr/bin/env bash
# Checks that the tools the tests use are installed. The machine image
# provides the Python ones (they cannot be installed from here); npm
# packages are installed by `make deps`. Under CI=true a missing tool fails
# the run; elsewhere it is a warning and the tests that need it skip.
set -u
missing=0
need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "check-tools: '$1' is not installed: $2" >&2
    missing=1
  fi
}
need go "the Go toolchain (1.26)"
need openapi-spec-validator "validates openapi.yaml (comes with the machine image)"
need cfn-lint "lints template.yaml (comes with the machine image)"
need moto_server "DynamoDB emulator (comes with the machine image)"
need kubectl "builds infra/k8s with kustomize in tests (comes with the machine image)"
need node "runs dynalite (Node.js comes with the machine image)"
need npm "installs dynalite (comes with Node.js)"
need redis-server "Redis and Redlock tests (Debian package redis-server: make deps installs it)"
# The Cloud Spanner emulator is not on PATH: look where its Debian package puts it.
if [ -z "${HASP_SPANNER_EMULATOR:-}" ] && ! command -v emulator_main >/dev/null 2>&1 \
   && [ ! -x /usr/lib/google-cloud-sdk/bin/cloud_spanner_emulator/emulator_main ] \
   && [ ! -x /usr/share/google-cloud-sdk/bin/cloud_spanner_emulator/emulator_main ] \
   && [ ! -x /google-cloud-sdk/bin/cloud_spanner_emulator/emulator_main ]; then
  echo "check-tools: the Cloud Spanner emulator (emulator_main) is not installed: Debian package google-cloud-cli-spanner-emulator (comes with the machine image)" >&2
  missing=1
fi
# ZooKeeper runs from its jars under Java (local/testbed/launch/zookeeper.go).
if [ ! -f "${HASP_ZOOKEEPER_JARS:-/usr/share/java}/zookeeper.jar" ]; then
  echo "check-tools: ZooKeeper is not installed: Debian package zookeeper (make deps installs it)" >&2
  missing=1
fi
need java "runs the ZooKeeper test server (Debian package zookeeper pulls it in)"
if [ "$missing" -ne 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "check-tools: failing because CI=true" >&2
    exit 1
  fi
  echo "check-tools: continuing; the tests that need these will skip" >&2
fi
exit 0
