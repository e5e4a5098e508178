// Package telemetry is hasp's metrics and traces: one table of metric
// names, shared by every front end (Prometheus on hasp serve, CloudWatch
// Embedded Metric Format on the Lambda), a Recorder that turns the
// service's operations, the provider's backend calls and the HTTP requests
// into those metrics, and the OpenTelemetry tracing set-up driven by the
// standard OTEL_* variables.
package telemetry

// Kind is how a metric aggregates.
type Kind int

// Kinds of metrics.
const (
	// Counter only grows.
	Counter Kind = iota
	// Histogram records a distribution (seconds).
	Histogram
	// Gauge is a current value.
	Gauge
)

// Metric describes one metric: the same name and labels on every front
// end.
type Metric struct {
	// Name is the metric's name, in Prometheus and in CloudWatch.
	Name string
	// Help is its description.
	Help string
	// Kind is how it aggregates.
	Kind Kind
	// Labels are its Prometheus labels, in order.
	Labels []string
	// Dimensions are the labels it keeps as CloudWatch dimensions in
	// Embedded Metric Format (a subset of Labels, in order): high
	// cardinality costs money in CloudWatch.
	Dimensions []string
}

// The metrics. Result labels take the values of Result. The
// dashboards and alerts in infra/ are checked against the same names
// (infra/metrics).
var (
	AcquireTotal           = Metric{"lock_acquire_total", "Acquires completed, by result (acquired, held, error).", Counter, []string{"result"}, []string{"result"}}
	AcquireDuration        = Metric{"lock_acquire_duration_seconds", "Time to complete an acquire, server-side waiting included, by result.", Histogram, []string{"result"}, []string{"result"}}
	ContendedAcquireTotal  = Metric{"lock_contended_acquire_total", "Acquires that found the lock held at their first attempt; contention ratio = rate(this) / rate(lock_acquire_total).", Counter, nil, nil}
	ActiveCount            = Metric{"lock_active_count", "Leases granted or renewed by this instance that have not ended by its knowledge.", Gauge, nil, nil}
	HoldDuration           = Metric{"lock_hold_duration_seconds", "Time from acquire to release of released leases.", Histogram, nil, nil}
	RenewTotal             = Metric{"lock_renew_total", "Renews completed, by result (renewed, lost, error).", Counter, []string{"result"}, []string{"result"}}
	ReleaseTotal           = Metric{"lock_release_total", "Releases completed, by result (released, lost, error).", Counter, []string{"result"}, []string{"result"}}
	LostTotal              = Metric{"lock_lost_total", "Renews and releases answered lease_lost.", Counter, nil, nil}
	BackendRequestsTotal   = Metric{"lock_backend_requests_total", "Calls to the storage provider, by provider, operation and result (ok, error).", Counter, []string{"provider", "op", "result"}, []string{"op", "result"}}
	BackendRequestDuration = Metric{"lock_backend_request_duration_seconds", "Duration of calls to the storage provider, by provider and operation.", Histogram, []string{"provider", "op"}, []string{"op"}}
	HTTPRequestsTotal      = Metric{"lock_http_requests_total", "HTTP requests answered, by route and status code.", Counter, []string{"route", "code"}, nil}
	HTTPRequestDuration    = Metric{"lock_http_request_duration_seconds", "Time to answer HTTP requests, by route.", Histogram, []string{"route"}, nil}
)

// Metrics lists every metric hasp exports.
var Metrics = []Metric{
	AcquireTotal, AcquireDuration, ContendedAcquireTotal, ActiveCount, HoldDuration,
	RenewTotal, ReleaseTotal, LostTotal,
	BackendRequestsTotal, BackendRequestDuration,
	HTTPRequestsTotal, HTTPRequestDuration,
}

// DurationBuckets are the histogram buckets, in seconds: from a millisecond
// (a local backend) to the longest server-side wait (20 s) and beyond, for
// hold times.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 300, 900, 3600}

// Sink receives metric observations. labels are the values of m.Labels,
// in order.
type Sink interface {
	// Add adds v to a counter.
	Add(m Metric, v float64, labels ...string)
	// Observe records v in a histogram.
	Observe(m Metric, v float64, labels ...string)
	// Set sets a gauge.
	Set(m Metric, v float64)
}
