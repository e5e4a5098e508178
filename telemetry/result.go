package telemetry

import (
	"errors"

	"github.com/hasplock/hasp/lock"
)

// Result names a completed operation's outcome, as metrics and spans
// label it: "acquired", "renewed" or "released" on success, "held" for an
// acquire that did not get the lock, "lost" for a renew or release of a
// lease that had ended, "error" otherwise; a watch that ended without
// error is "ok".
func Result(op string, err error) string {
	switch {
	case err == nil:
		switch op {
		case "acquire":
			return "acquired"
		case "renew":
			return "renewed"
		case "watch":
			return "ok"
		default:
			return "released"
		}
	case errors.Is(err, lock.ErrHeld):
		return "held"
	case errors.Is(err, lock.ErrLeaseLost):
		return "lost"
	default:
		return "error"
	}
}
