package telemetry

import (
	"net/http"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
)

// Instrument builds the lock service over p and the one API handler over
// it, recording the lock operations, the backend calls and the HTTP
// requests on sink (no metrics when sink is nil). Every front end builds
// its handler with it; the caller closes the service.
func Instrument(p providers.Provider, sink Sink, svcOpts []service.Option, apiOpts ...api.Option) (*service.Service, http.Handler) {
	svcOpts, apiOpts = svcOpts[:len(svcOpts):len(svcOpts)], apiOpts[:len(apiOpts):len(apiOpts)] // never write to the caller's arrays
	if sink != nil {
		rec := NewRecorder(sink)
		p = rec.Provider(p)
		svcOpts = append(svcOpts, service.WithObserver(rec))
		apiOpts = append(apiOpts, api.WithRequestObserver(rec.HTTP))
	}
	svc := service.New(p, svcOpts...)
	return svc, api.New(svc, apiOpts...)
}
