package providers_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/providers"
)

func TestCheckParams(t *testing.T) {
	for _, tc := range []struct {
		url     string
		allowed []string
		err     string // "" when the URL is accepted
	}{
		{"dynamodb://locks", []string{"cleanup"}, ""},
		{"dynamodb://locks?cleanup=720h", []string{"cleanup"}, ""},
		{"dynamodb://locks?clenaup=720h", []string{"cleanup"}, `dynamodb: store URL "dynamodb://locks?clenaup=720h": unknown parameter "clenaup" (allowed: cleanup)`},
		{"memory:?x=1", nil, `unknown parameter "x" (allowed: none)`},
		{"redis://u:secret@h:6379?b=1&a=2", []string{"b"}, `unknown parameter "a"`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			err = providers.CheckParams(u, tc.allowed...)
			if tc.err == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			assert.NotContains(t, err.Error(), "secret", "credentials are redacted")
		})
	}
}
