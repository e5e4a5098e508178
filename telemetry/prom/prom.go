// Package prom exports hasp's metrics (package telemetry) to Prometheus
// with client_golang, for `hasp serve`'s /metrics.
package prom

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hasplock/hasp/telemetry/catalog"
)

// Prometheus is a telemetry.Sink that exports the metrics to Prometheus (client_golang).
type Prometheus struct {
	reg *prometheus.Registry

	mu         sync.Mutex
	counters   map[string]*prometheus.CounterVec
	histograms map[string]*prometheus.HistogramVec
	gauges     map[string]prometheus.Gauge
}

// New returns a Sink on a new registry that also carries the Go
// runtime and process collectors. Every metric is registered at once, and
// the result labels of the lock operations start at zero, so that rates
// exist before the first error.
func New() *Prometheus {
	p := &Prometheus{
		reg:        prometheus.NewRegistry(),
		counters:   map[string]*prometheus.CounterVec{},
		histograms: map[string]*prometheus.HistogramVec{},
		gauges:     map[string]prometheus.Gauge{},
	}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, m := range catalog.Metrics {
		switch m.Kind {
		case catalog.Counter:
			v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.Name, Help: m.Help}, m.Labels)
			p.reg.MustRegister(v)
			p.counters[m.Name] = v
		case catalog.Histogram:
			v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: m.Name, Help: m.Help, Buckets: catalog.DurationBuckets}, m.Labels)
			p.reg.MustRegister(v)
			p.histograms[m.Name] = v
		}
	}
	for _, r := range []string{"acquired", "held", "error"} {
		p.counters[catalog.AcquireTotal.Name].WithLabelValues(r)
	}
	for _, r := range []string{"renewed", "lost", "error"} {
		p.counters[catalog.RenewTotal.Name].WithLabelValues(r)
	}
	for _, r := range []string{"released", "lost", "error"} {
		p.counters[catalog.ReleaseTotal.Name].WithLabelValues(r)
	}
	for _, name := range []string{catalog.ContendedAcquireTotal.Name, catalog.LostTotal.Name} {
		p.counters[name].WithLabelValues()
	}
	return p
}

// Registry returns the registry, for more collectors.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (p *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg})
}

// Add implements telemetry.Sink.
func (p *Prometheus) Add(m catalog.Metric, v float64, labels ...string) {
	if c := p.counters[m.Name]; c != nil {
		c.WithLabelValues(labels...).Add(v)
	}
}

// Observe implements telemetry.Sink.
func (p *Prometheus) Observe(m catalog.Metric, v float64, labels ...string) {
	if h := p.histograms[m.Name]; h != nil {
		h.WithLabelValues(labels...).Observe(v)
	}
}

// Set implements telemetry.Sink. Gauges read at scrape time (GaugeFunc) ignore it.
func (p *Prometheus) Set(m catalog.Metric, v float64) {
	p.mu.Lock()
	g := p.gauges[m.Name]
	if g == nil {
		g = prometheus.NewGauge(prometheus.GaugeOpts{Name: m.Name, Help: m.Help})
		p.reg.MustRegister(g)
		p.gauges[m.Name] = g
	}
	p.mu.Unlock()
	if g != nil {
		g.Set(v)
	}
}

// GaugeFunc exports gauge m as the value of f at each scrape.
func (p *Prometheus) GaugeFunc(m catalog.Metric, f func() float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gauges[m.Name] != nil {
		return
	}
	p.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.Name, Help: m.Help}, f))
	p.gauges[m.Name] = noopGauge{}
}

// noopGauge stands for a gauge read by a function: Set does nothing.
type noopGauge struct{ prometheus.Gauge }

func (noopGauge) Set(float64) {}
