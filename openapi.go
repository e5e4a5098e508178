// Package hasp is the root of the hasp module: a distributed lock service
// with leases and fencing tokens. The lock semantics are in package lock,
// the HTTP contract in package api and OpenAPI (this package's OpenAPI),
// the backends under providers, the entry points under functions and cmd.
package hasp

import _ "embed"

// OpenAPI is openapi.yaml: the description of HTTP API v1 that every front
// end serves.
//
//go:embed openapi.yaml
var OpenAPI []byte
