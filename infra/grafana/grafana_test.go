package grafana

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/infra/metrics"
)

// dashboard is the part of Grafana's dashboard model the tests check.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

var (
	// variable matches $name and ${name} (Grafana's template variables).
	variable = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	// builtins are Grafana's own variables, with a value PromQL accepts.
	builtins = map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
	// labelValues matches a label_values(selector, label) variable query.
	labelValues = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)
)

func load(t *testing.T) dashboard {
	t.Helper()
	require.True(t, json.Valid(Dashboard), "hasp.json is valid JSON")
	var d dashboard
	require.NoError(t, json.Unmarshal(Dashboard, &d))
	return d
}

// expand replaces template variables with values PromQL parses (a
// dashboard variable becomes a regular expression, as Grafana's multi-value
// variables are); an undefined variable is an error.
func expand(expr string, defined []string) (string, error) {
	var err error
	out := variable.ReplaceAllStringFunc(expr, func(v string) string {
		name := variable.FindStringSubmatch(v)[1]
		if val, ok := builtins[name]; ok {
			return val
		}
		if !slices.Contains(defined, name) && err == nil {
			err = fmt.Errorf("variable $%s in %q is not defined", name, expr)
		}
		return ".*"
	})
	return out, err
}

// names expands expr and returns the metrics it selects.
func names(expr string, defined []string) ([]string, error) {
	e, err := expand(expr, defined)
	if err != nil {
		return nil, err
	}
	return metrics.Names(e)
}

// TestDashboard: every query parses and selects only hasp's metrics, with
// labels they have; every metric of the catalog is shown; panels use the
// data source variable, have unique ids and do not overlap.
func TestDashboard(t *testing.T) {
	d := load(t)
	assert.Equal(t, "hasp", d.UID)
	assert.NotEmpty(t, d.Title)

	var defined []string
	for _, v := range d.Templating.List {
		defined = append(defined, v.Name)
	}
	require.Contains(t, defined, "datasource")
	shown := map[string]bool{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)["query"].(string)
		m := labelValues.FindStringSubmatch(q)
		require.NotNil(t, m, "variable %s: a label_values query", v.Name)
		_, err := names(m[1], defined)
		assert.NoError(t, err, "variable %s", v.Name)
	}

	ids := map[int]bool{}
	var cells = map[[2]int]string{}
	var graphs int
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d is unique", p.ID)
		ids[p.ID] = true
		g := p.GridPos
		assert.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24, "panel %q fits the 24-column grid: %+v", p.Title, g)
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok {
					t.Errorf("panels %q and %q overlap", other, p.Title)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		graphs++
		require.NotNil(t, p.Datasource, p.Title)
		assert.Equal(t, "${datasource}", p.Datasource.UID, "panel %q uses the data source variable", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has a query", p.Title)
		var refs []string
		for _, q := range p.Targets {
			assert.NotContains(t, refs, q.RefID, "panel %q: refId %s unique", p.Title, q.RefID)
			refs = append(refs, q.RefID)
			if q.Datasource != nil {
				assert.Equal(t, "${datasource}", q.Datasource.UID)
			}
			got, err := names(q.Expr, defined)
			if assert.NoError(t, err, "panel %q", p.Title) {
				for _, n := range got {
					shown[n] = true
				}
			}
		}
	}
	assert.GreaterOrEqual(t, graphs, len(metrics.All)/2)

	var missing []string
	for _, m := range metrics.All {
		if !shown[m.Name] {
			missing = append(missing, m.Name)
		}
	}
	slices.Sort(missing)
	assert.Empty(t, missing, "every metric appears in some panel")
}

// TestExpand: builtins and defined variables expand to values PromQL
// parses; an undefined variable or an unknown metric fails.
func TestExpand(t *testing.T) {
	got, err := expand(`rate(lock_lost_total{job=~"${job}"}[$__rate_interval])`, []string{"job"})
	require.NoError(t, err)
	assert.Equal(t, `rate(lock_lost_total{job=~".*"}[5m])`, got)
	_, err = names(`rate(lock_lost_total{job=~"$nope"}[$__rate_interval])`, []string{"job"})
	assert.ErrorContains(t, err, "variable $nope")
	_, err = names(`rate(lock_losts_total{job=~"$job"}[$__rate_interval])`, []string{"job"})
	assert.ErrorContains(t, err, `unknown metric "lock_losts_total"`)
}
