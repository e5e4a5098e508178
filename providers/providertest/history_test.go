package providertest

import (
	"testing"
	"time"
)

func TestCheckHolds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name  string
		holds []Hold
		ok    bool
	}{
		{"empty", nil, true},
		{"sequential", []Hold{{"a", 1, at(0), at(10), 1}, {"a", 2, at(10), at(20), 2}}, true},
		{"other names may overlap", []Hold{{"a", 1, at(0), at(10), 1}, {"b", 1, at(5), at(15), 2}}, true},
		{"overlap", []Hold{{"a", 1, at(0), at(10), 1}, {"a", 2, at(9), at(20), 2}}, false},
		{"token equal", []Hold{{"a", 3, at(0), at(10), 1}, {"a", 3, at(11), at(20), 2}}, false},
		{"token decreases", []Hold{{"a", 5, at(0), at(10), 1}, {"a", 4, at(11), at(20), 2}}, false},
		{"token zero", []Hold{{"a", 0, at(0), at(10), 1}}, false},
		{"token too large", []Hold{{"a", 1 << 53, at(0), at(10), 1}}, false},
		{"unsorted input", []Hold{{"a", 2, at(10), at(20), 2}, {"a", 1, at(0), at(10), 1}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckHolds(tt.holds)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckHolds = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
