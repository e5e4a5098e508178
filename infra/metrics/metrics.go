// Package metrics is the catalog of the metrics hasp exports, the one list
// that the Prometheus alerts (k8s/), the Grafana dashboard (grafana/) and
// the CloudWatch dashboard of the CDK stack are checked against. Its
// entries (All, in catalog_gen.go) are generated from the hasp module's
// telemetry/catalog, the table every front end exports: this module does
// not depend on the hasp module.
//
// `hasp serve` exports them to Prometheus at /metrics; the Lambda function
// writes the same names in CloudWatch Embedded Metric Format under the
// namespace CloudWatchNamespace, with the dimensions given here.
package metrics

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Kind is a metric's Prometheus type.
type Kind int

// The metric kinds.
const (
	Counter Kind = iota
	Gauge
	Histogram
)

// Metric is one exported metric.
type Metric struct {
	// Name is the metric's name, the same in Prometheus and CloudWatch.
	Name string
	// Kind is its Prometheus type; a Histogram also has the series
	// Name_bucket (with the label "le"), Name_sum and Name_count.
	Kind Kind
	// Labels maps each Prometheus label to its possible values; nil values
	// mean the values are open (a route, a status code, a provider name).
	Labels map[string][]string
	// Dimensions are the CloudWatch dimensions of the EMF metric, in order.
	Dimensions []string
}

// TargetLabels are the labels Prometheus adds to every scraped series
// (from the target and the ServiceMonitor); queries may select on them.
var TargetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

// Lookup returns the metric a series name belongs to: the metric's own
// name, or for a histogram its _bucket, _sum and _count series.
func Lookup(series string) (Metric, bool) {
	for _, m := range All {
		if m.Name == series {
			return m, true
		}
		if m.Kind == Histogram {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if series == m.Name+suffix {
					return m, true
				}
			}
		}
	}
	return Metric{}, false
}

// Names returns the names of the metrics a PromQL expression selects, in
// order of first appearance (histogram series under their metric's name).
// It fails when the expression does not parse, selects a series that is not
// in the catalog or has no name, or matches a label the series does not
// have, or a value the label never takes.
func Names(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("promql %q: %w", expr, err)
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || bad != nil {
			return nil
		}
		m, err := checkSelector(vs)
		if err != nil {
			bad = fmt.Errorf("promql %q: %w", expr, err)
			return nil
		}
		if !slices.Contains(names, m.Name) {
			names = append(names, m.Name)
		}
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("promql %q selects no hasp metric", expr)
	}
	return names, nil
}

func checkSelector(vs *parser.VectorSelector) (Metric, error) {
	if vs.Name == "" {
		return Metric{}, fmt.Errorf("selector %s has no metric name", vs)
	}
	m, ok := Lookup(vs.Name)
	if !ok {
		return Metric{}, fmt.Errorf("unknown metric %q", vs.Name)
	}
	for _, lm := range vs.LabelMatchers {
		if lm.Name == labels.MetricName || slices.Contains(TargetLabels, lm.Name) {
			continue
		}
		if lm.Name == "le" && vs.Name == m.Name+"_bucket" {
			continue
		}
		allowed, ok := m.Labels[lm.Name]
		if !ok {
			return Metric{}, fmt.Errorf("%s has no label %q", vs.Name, lm.Name)
		}
		if allowed == nil {
			continue
		}
		vals := []string{lm.Value}
		if lm.Type == labels.MatchRegexp || lm.Type == labels.MatchNotRegexp {
			vals = strings.Split(lm.Value, "|") // only alternations of literal values
		}
		for _, v := range vals {
			if !slices.Contains(allowed, v) {
				return Metric{}, fmt.Errorf("%s: label %s is never %q (one of %s)", vs.Name, lm.Name, v, strings.Join(allowed, ", "))
			}
		}
	}
	return m, nil
}
