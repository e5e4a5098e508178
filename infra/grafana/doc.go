// Package grafana holds hasp's Grafana dashboard, hasp.json: import it
// (Dashboards > New > Import) or provision it; it asks for a Prometheus
// data source that scrapes `hasp serve` (infra/k8s has the ServiceMonitor).
// Its tests check that every query parses and uses only hasp's metrics,
// and that every metric is shown.
package grafana

import _ "embed"

// Dashboard is hasp.json.
//
//go:embed hasp.json
var Dashboard []byte
