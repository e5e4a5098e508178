package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

var staticCreds = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")

// sigv4Verifier answers like hasp after checking each request's SigV4
// signature: it signs a copy of the request with the same credentials,
// date, body hash, service and region, and compares the Authorization
// headers.
func sigv4Verifier(t *testing.T, checked *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := r.Header.Get("Authorization")
		date, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
		ok := err == nil && strings.HasPrefix(got, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") && strings.Contains(got, "/eu-west-1/execute-api/aws4_request")
		if ok {
			cp := r.Clone(context.Background())
			cp.Host = r.Host
			cp.URL.Scheme, cp.URL.Host = "http", r.Host
			// Keep only the headers the client signed, as API Gateway does
			// (the transport adds Accept-Encoding and User-Agent later).
			_, signed, _ := strings.Cut(got, "SignedHeaders=")
			signed, _, _ = strings.Cut(signed, ",")
			keep := map[string]bool{}
			for _, h := range strings.Split(signed, ";") {
				keep[http.CanonicalHeaderKey(h)] = true
			}
			for h := range cp.Header {
				if !keep[h] {
					cp.Header.Del(h)
				}
			}
			cp.Header.Del("Authorization")
			cp.Header.Del("X-Amz-Date")
			cp.Header.Del("X-Amz-Security-Token")
			cp.Body = io.NopCloser(bytes.NewReader(body))
			sum := sha256.Sum256(body)
			creds, _ := staticCreds.Retrieve(context.Background())
			if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials(creds), cp, hex.EncodeToString(sum[:]), "execute-api", "eu-west-1", date); err != nil {
				ok = false
			}
			ok = ok && cp.Header.Get("Authorization") == got && r.Header.Get("X-Amz-Security-Token") == "session-token"
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			t.Errorf("bad signature on %s %s: %q", r.Method, r.URL, got)
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"message":"Forbidden"}`)
			return
		}
		checked.Add(1)
		if r.Method == http.MethodGet {
			io.WriteString(w, `{"name":"signed/name@1","held":false}`)
			return
		}
		io.WriteString(w, `{"name":"signed/name@1","owner":"","lease_id":"abcdefghijklmnopqrstuvwxyz012345","fencing_token":1,"ttl_ms":30000,"expires_at":"2099-01-01T00:00:00.000Z"}`)
	})
}
