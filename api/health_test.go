package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/api/apitest"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
	"github.com/hasplock/hasp/telemetry"
	"github.com/hasplock/hasp/telemetry/prom"
)

// caveated is a provider that states a guarantee, as the ssm provider does.
type caveated struct{ *memory.Provider }

func (caveated) Guarantee() string { return providers.GuaranteeStaleReads }

// TestHealthGuarantee: /v1/health shows a provider's stated guarantee,
// also through the telemetry wrapper `hasp serve` puts around providers,
// and shows none for a provider that states none; both bodies match the
// OpenAPI schema.
func TestHealthGuarantee(t *testing.T) {
	spec, err := apitest.LoadSpec()
	require.NoError(t, err)
	for name, tt := range map[string]struct {
		h    http.Handler
		want any
	}{
		"stated": {api.New(service.New(caveated{memory.New()})), providers.GuaranteeStaleReads},
		"stated, instrumented": {func() http.Handler {
			rec := telemetry.NewRecorder(prom.New())
			return api.New(service.New(rec.Provider(caveated{memory.New()}), service.WithObserver(rec)))
		}(), providers.GuaranteeStaleReads},
		"none": {api.New(service.New(memory.New())), nil},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(tt.h)
			defer srv.Close()
			tg := apitest.Target{BaseURL: srv.URL}
			r := tg.Do(t, http.MethodGet, "/v1/health", nil)
			require.Equal(t, http.StatusOK, r.Status)
			assert.Equal(t, tt.want, r.Body["guarantee"])
			assert.NoError(t, spec.Check(http.MethodGet, "/v1/health", r.Status, r.Raw))
		})
	}
}
