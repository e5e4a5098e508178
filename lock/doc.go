// Package lock holds hasp's lock semantics in one place: the lease and its
// fields, the validation rules of HTTP API v1, and the sentinel errors that
// every layer (providers, the HTTP handler, the client SDK) reports.
//
// It imports only the standard library, so the thin client SDK can share it.
//
// # Semantics
//
// A lock is named. At any instant of the service's clock at most one
// unexpired lease holds a name. A lease is granted by an acquire, carries a
// secret lease id (returned only to the acquirer) and a fencing token, and
// ends at its ExpiresAt, on release, or never earlier. Renew extends it and
// keeps its token. Each successful acquire of a name gets a fencing token
// strictly greater than every token issued before for that name, across
// releases, expiries, restarts and clean-up of idle records.
//
// # Fencing
//
// A lease is a promise about time, and a process can pause (GC, swap, a
// frozen VM) past its expiry without knowing it. The fencing token closes
// that gap: a protected resource remembers the largest token it has seen
// and refuses writes that carry a smaller one. See the client package for
// an example.
package lock
