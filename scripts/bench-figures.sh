#!/bin/bash
# The `hasp bench` figures of BENCHMARKS.md: embedded etcd, hasp serve over
# HTTP, and DynamoDB on moto (served one request at a time), on loopback.
set -e
cd "$(dirname "$0")/.."
make build >/dev/null
B=bin/hasp
rm -rf /tmp/hb-data
echo "## embedded, uncontended"; $B bench --store embedded:/tmp/hb-data --workers 1 --names 1 --hold 0 --duration 10s
echo "## embedded, 4 on 1 name, hold 5ms"; $B bench --store embedded:/tmp/hb-data --workers 4 --names 1 --hold 5ms --duration 10s
$B serve --store embedded:/tmp/hb-data2 --listen 127.0.0.1:18090 2>/dev/null & SP=$!
sleep 2
echo "## HTTP to hasp serve (embedded), uncontended"; $B bench --endpoint http://127.0.0.1:18090 --workers 1 --names 1 --hold 0 --duration 10s
echo "## HTTP to hasp serve (embedded), 4 on 1 name, hold 5ms"; $B bench --endpoint http://127.0.0.1:18090 --workers 4 --names 1 --hold 5ms --duration 10s
kill $SP; wait $SP 2>/dev/null || true
python3 local/testbed/launch/scripts/moto_serial.py 127.0.0.1 18091 >/dev/null 2>&1 & MP=$!
sleep 4
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:18091
$B store init --store dynamodb://bench >/dev/null
echo "## DynamoDB (moto), uncontended"; $B bench --store dynamodb://bench --workers 1 --names 1 --hold 0 --duration 10s
echo "## DynamoDB (moto), 4 on 1 name, hold 5ms"; $B bench --store dynamodb://bench --workers 4 --names 1 --hold 5ms --duration 10s
kill $MP
