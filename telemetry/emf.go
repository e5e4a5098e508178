package telemetry

import (
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hasplock/hasp/telemetry/catalog"
)

// EMF is a Sink that writes CloudWatch Embedded Metric Format: JSON log
// lines that CloudWatch Logs turns into metrics, with no network call of
// its own (on Lambda, stdout goes to CloudWatch Logs). Observations are
// buffered and written by Flush, one line per set of dimension values, so
// a Lambda invocation writes a few lines at its end.
type EMF struct {
	w         io.Writer
	namespace string
	now       func() time.Time

	mu     sync.Mutex
	groups map[string]*emfGroup
	order  []string
}

type emfGroup struct {
	dims    []string          // dimension names, in order
	values  map[string]string // dimension values
	metrics []catalog.Metric  // in order of first observation
	data    map[string][]float64
}

// NewEMF returns an EMF sink writing to w under namespace (CloudWatch's
// metric namespace, "hasp" in the CDK stack).
func NewEMF(w io.Writer, namespace string) *EMF {
	return &EMF{w: w, namespace: namespace, now: time.Now, groups: map[string]*emfGroup{}}
}

// How record combines a value with the ones buffered before.
const (
	emfSum     = iota // counters
	emfAppend         // histograms
	emfReplace        // gauges
)

func (e *EMF) record(m catalog.Metric, v float64, mode int, labels []string) {
	values := map[string]string{}
	key := ""
	for _, d := range m.Dimensions {
		for i, l := range m.Labels {
			if l == d && i < len(labels) {
				values[d] = labels[i]
			}
		}
		key += "\x00" + d + "=" + values[d]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.groups[key]
	if g == nil {
		g = &emfGroup{dims: m.Dimensions, values: values, data: map[string][]float64{}}
		e.groups[key] = g
		e.order = append(e.order, key)
	}
	cur, seen := g.data[m.Name]
	if !seen {
		g.metrics = append(g.metrics, m)
	}
	switch {
	case mode == emfSum && len(cur) == 1:
		cur[0] += v
	case mode == emfAppend:
		g.data[m.Name] = append(cur, v)
	default:
		g.data[m.Name] = []float64{v}
	}
}

// Add implements Sink: counters are summed until Flush.
func (e *EMF) Add(m catalog.Metric, v float64, labels ...string) { e.record(m, v, emfSum, labels) }

// Observe implements Sink: every value is kept until Flush.
func (e *EMF) Observe(m catalog.Metric, v float64, labels ...string) {
	e.record(m, v, emfAppend, labels)
}

// Set implements Sink: the last value before Flush is written.
func (e *EMF) Set(m catalog.Metric, v float64) { e.record(m, v, emfReplace, nil) }

// unit is the CloudWatch unit of a metric of kind k.
func unit(k catalog.Kind) string {
	switch k {
	case catalog.Histogram:
		return "Seconds"
	default:
		return "Count"
	}
}

// Flush writes the buffered observations, one JSON line per set of
// dimension values, and empties the buffer.
func (e *EMF) Flush() error {
	e.mu.Lock()
	groups, order := e.groups, e.order
	e.groups, e.order = map[string]*emfGroup{}, nil
	e.mu.Unlock()
	if len(order) == 0 {
		return nil
	}
	// Lines for one flush, in a stable order.
	sort.Strings(order)
	var b strings.Builder
	ts := e.now().UnixMilli()
	for _, k := range order {
		g := groups[k]
		type metricDef struct {
			Name string `json:"Name"`
			Unit string `json:"Unit"`
		}
		defs := make([]metricDef, 0, len(g.metrics))
		line := map[string]any{}
		for _, m := range g.metrics {
			defs = append(defs, metricDef{Name: m.Name, Unit: unit(m.Kind)})
			if vs := g.data[m.Name]; len(vs) == 1 {
				line[m.Name] = vs[0]
			} else {
				line[m.Name] = vs
			}
		}
		dims := g.dims
		if dims == nil {
			dims = []string{}
		}
		for _, d := range g.dims {
			line[d] = g.values[d]
		}
		line["_aws"] = map[string]any{
			"Timestamp": ts,
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  e.namespace,
				"Dimensions": [][]string{dims},
				"Metrics":    defs,
			}},
		}
		out, err := json.Marshal(line)
		if err != nil {
			return err
		}
		b.Write(out)
		b.WriteByte('\n')
	}
	_, err := io.WriteString(e.w, b.String())
	return err
}
