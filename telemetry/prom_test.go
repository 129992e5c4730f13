package telemetry

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestQuantile compares the estimate with the exact quantile of a known
// distribution: 1..1000 ms, uniform.
func TestQuantile(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewCloudMetrics(reg, "azure")
	if Quantile(m.Freshness, 0.99) != 0 {
		t.Fatal("quantile without observations")
	}
	var ages []time.Duration
	for i := 1; i <= 1000; i++ {
		ages = append(ages, time.Duration(i)*time.Millisecond)
	}
	m.ObserveFreshness(ages)
	for _, tt := range []struct{ q, exact, tol float64 }{{0.5, 0.5, 0.05}, {0.99, 0.99, 0.02}, {0.1, 0.1, 0.02}} {
		if got := Quantile(m.Freshness, tt.q); math.Abs(got-tt.exact) > tt.tol {
			t.Errorf("q%.2f = %.4f, want %.3f ± %.2f", tt.q, got, tt.exact, tt.tol)
		}
	}
	if n := testutil.CollectAndCount(reg, "intercloud_e2e_freshness_seconds"); n != 1 {
		t.Fatalf("%d freshness series", n)
	}
}

// TestSampleCollector exports samples with their types, labels and help.
func TestSampleCollector(t *testing.T) {
	c := SampleCollector(func() []Sample {
		return []Sample{
			{Name: "load_failed_total", Help: "Load invocations that failed.", Type: prometheus.CounterValue, Labels: map[string]string{"cloud": "aws"}, Value: 3},
			{Name: "load_failed_total", Help: "Load invocations that failed.", Type: prometheus.CounterValue, Labels: map[string]string{"cloud": "azure"}, Value: 0},
			{Name: "replication_rows_per_second", Help: "Recent write rate.", Type: prometheus.GaugeValue, Labels: map[string]string{"stream": "a\"b", "cloud": "azure"}, Value: 1.5},
		}
	})
	want := `# HELP intercloud_load_failed_total Load invocations that failed.
# TYPE intercloud_load_failed_total counter
intercloud_load_failed_total{cloud="aws"} 3
intercloud_load_failed_total{cloud="azure"} 0
# HELP intercloud_replication_rows_per_second Recent write rate.
# TYPE intercloud_replication_rows_per_second gauge
intercloud_replication_rows_per_second{cloud="azure",stream="a\"b"} 1.5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
