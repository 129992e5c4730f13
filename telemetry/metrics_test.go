package telemetry

import (
	"strings"
	"testing"
)

func TestWriteMetrics(t *testing.T) {
	var b strings.Builder
	err := WriteMetrics(&b, []Metric{
		{Name: "x_total", Help: "Xs.", Type: "counter", Labels: map[string]string{"cloud": "aws", "code": `a"b`}, Value: 3},
		{Name: "lag_seconds", Help: "Lag.", Type: "gauge", Value: 0.25},
		{Name: "x_total", Help: "Xs.", Type: "counter", Labels: map[string]string{"cloud": "azure"}, Value: 1e6},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `# HELP lag_seconds Lag.
# TYPE lag_seconds gauge
lag_seconds 0.25
# HELP x_total Xs.
# TYPE x_total counter
x_total{cloud="aws",code="a\"b"} 3
x_total{cloud="azure"} 1e+06
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
