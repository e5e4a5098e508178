// Package catalog is the one table of the metrics hasp exports: names,
// kinds, labels and the values they take, and CloudWatch dimensions. Every
// front end exports exactly these (package telemetry and its sinks), and
// infra/metrics, which the dashboards and alerts are checked against, is
// generated from it (go generate ./telemetry/catalog). It imports nothing
// but the standard library, so that generators and checks can use it.
package catalog

//go:generate go run ./internal/gen -o ../../infra/metrics/catalog_gen.go

// CloudWatchNamespace is the CloudWatch namespace of hasp's metrics (the
// CDK stack's dashboard reads it).
const CloudWatchNamespace = "hasp"

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
	// Values are the values a label can take, for the labels whose values
	// are a closed set (the others, such as a route or a provider, are
	// open): dashboards and alerts are checked against them.
	Values map[string][]string
}

// The closed sets of label values.
var (
	acquireResults = []string{"acquired", "held", "error"}
	renewResults   = []string{"renewed", "lost", "error"}
	releaseResults = []string{"released", "lost", "error"}
	backendOps     = []string{"acquire", "renew", "release", "status", "ping", "list"}
	backendResults = []string{"ok", "error"}
)

// The metrics. Result labels take the values of telemetry.Result. The
// dashboards and alerts in infra/ are checked against the same catalogue,
// generated into infra/metrics (go generate, in this folder).
var (
	AcquireTotal           = Metric{"lock_acquire_total", "Acquires completed, by result (acquired, held, error).", Counter, []string{"result"}, []string{"result"}, map[string][]string{"result": acquireResults}}
	AcquireDuration        = Metric{"lock_acquire_duration_seconds", "Time to complete an acquire, server-side waiting included, by result.", Histogram, []string{"result"}, []string{"result"}, map[string][]string{"result": acquireResults}}
	ContendedAcquireTotal  = Metric{"lock_contended_acquire_total", "Acquires that found the lock held at their first attempt; contention ratio = rate(this) / rate(lock_acquire_total).", Counter, nil, nil, nil}
	ActiveCount            = Metric{"lock_active_count", "Leases granted or renewed by this instance that have not ended by its knowledge.", Gauge, nil, nil, nil}
	HoldDuration           = Metric{"lock_hold_duration_seconds", "Time from acquire to release of released leases.", Histogram, nil, nil, nil}
	RenewTotal             = Metric{"lock_renew_total", "Renews completed, by result (renewed, lost, error).", Counter, []string{"result"}, []string{"result"}, map[string][]string{"result": renewResults}}
	ReleaseTotal           = Metric{"lock_release_total", "Releases completed, by result (released, lost, error).", Counter, []string{"result"}, []string{"result"}, map[string][]string{"result": releaseResults}}
	LostTotal              = Metric{"lock_lost_total", "Renews and releases answered lease_lost.", Counter, nil, nil, nil}
	BackendRequestsTotal   = Metric{"lock_backend_requests_total", "Calls to the storage provider, by provider, operation and result (ok, error).", Counter, []string{"provider", "op", "result"}, []string{"op", "result"}, map[string][]string{"op": backendOps, "result": backendResults}}
	BackendRequestDuration = Metric{"lock_backend_request_duration_seconds", "Duration of calls to the storage provider, by provider and operation.", Histogram, []string{"provider", "op"}, []string{"op"}, map[string][]string{"op": backendOps}}
	HTTPRequestsTotal      = Metric{"lock_http_requests_total", "HTTP requests answered, by route and status code.", Counter, []string{"route", "code"}, nil, nil}
	HTTPRequestDuration    = Metric{"lock_http_request_duration_seconds", "Time to answer HTTP requests, by route.", Histogram, []string{"route"}, nil, nil}
	WatchesOpen            = Metric{"lock_watches_open", "Watches (GET /v1/locks/watch) this instance is serving now.", Gauge, nil, nil, nil}
	WatchChangesTotal      = Metric{"lock_watch_changes_total", "Watches answered with a change of holder (changed: true).", Counter, nil, nil, nil}
)

// Metrics lists every metric hasp exports.
var Metrics = []Metric{
	AcquireTotal, AcquireDuration, ContendedAcquireTotal, ActiveCount, HoldDuration,
	RenewTotal, ReleaseTotal, LostTotal,
	BackendRequestsTotal, BackendRequestDuration,
	HTTPRequestsTotal, HTTPRequestDuration,
	WatchesOpen, WatchChangesTotal,
}

// DurationBuckets are the histogram buckets, in seconds: from a millisecond
// (a local backend) to the longest server-side wait (20 s) and beyond, for
// hold times.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 300, 900, 3600}
