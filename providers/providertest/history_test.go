package providertest

import (
	"testing"
	"time"
)

func hold(name string, token int64, start, end time.Time, client int) Hold {
	return Hold{Name: name, Token: token, Start: start, End: end, Client: client}
}

// sent is hold with the time its acquire was sent.
func sent(h Hold, at time.Time) Hold {
	h.Sent = at
	return h
}

// checkCase is a history and whether a checker must accept it.
type checkCase struct {
	name  string
	holds []Hold
	ok    bool
}

func runChecks(t *testing.T, tests []checkCase, check func([]Hold) error) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := check(tt.holds); (err == nil) != tt.ok {
				t.Fatalf("check = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestCheckHolds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []checkCase{
		{"empty", nil, true},
		{"sequential", []Hold{hold("a", 1, at(0), at(10), 1), hold("a", 2, at(10), at(20), 2)}, true},
		{"other names may overlap", []Hold{hold("a", 1, at(0), at(10), 1), hold("b", 1, at(5), at(15), 2)}, true},
		{"overlap", []Hold{hold("a", 1, at(0), at(10), 1), hold("a", 2, at(9), at(20), 2)}, false},
		{"token equal", []Hold{hold("a", 3, at(0), at(10), 1), hold("a", 3, at(11), at(20), 2)}, false},
		{"token decreases", []Hold{hold("a", 5, at(0), at(10), 1), hold("a", 4, at(11), at(20), 2)}, false},
		{"token zero", []Hold{hold("a", 0, at(0), at(10), 1)}, false},
		{"token too large", []Hold{hold("a", 1<<53, at(0), at(10), 1)}, false},
		{"unsorted input", []Hold{hold("a", 2, at(10), at(20), 2), hold("a", 1, at(0), at(10), 1)}, true},
	}
	runChecks(t, tests, CheckHolds)
}

func TestCheckPermits(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []checkCase{
		{"empty", nil, true},
		{"two of two overlap", []Hold{hold("a", 1, at(0), at(10), 1), hold("a", 2, at(5), at(15), 2)}, true},
		{"three of two overlap", []Hold{hold("a", 1, at(0), at(10), 1), hold("a", 2, at(5), at(15), 2), hold("a", 3, at(9), at(20), 3)}, false},
		{"end meets start", []Hold{hold("a", 1, at(0), at(10), 1), hold("a", 2, at(0), at(10), 2), hold("a", 3, at(10), at(20), 3)}, true},
		{"other names do not count", []Hold{hold("a", 1, at(0), at(10), 1), hold("a", 2, at(0), at(10), 2), hold("b", 1, at(0), at(10), 3)}, true},
		{"token twice", []Hold{hold("a", 4, at(0), at(10), 1), hold("a", 4, at(20), at(30), 2)}, false},
		{"token zero", []Hold{hold("a", 0, at(0), at(10), 1)}, false},
		{"grant order kept", []Hold{sent(hold("a", 1, at(2), at(10), 1), at(0)), sent(hold("a", 2, at(5), at(15), 2), at(3))}, true},
		{"concurrent grants in any order", []Hold{sent(hold("a", 2, at(2), at(10), 1), at(0)), sent(hold("a", 1, at(5), at(15), 2), at(1))}, true},
		{"grant order broken", []Hold{sent(hold("a", 2, at(2), at(10), 1), at(0)), sent(hold("a", 1, at(5), at(15), 2), at(3))}, false},
	}
	runChecks(t, tests, func(holds []Hold) error { return CheckPermits(holds, 2) })
}
