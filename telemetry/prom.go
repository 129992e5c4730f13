package telemetry

import (
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Metric names follow the Prometheus conventions: the intercloud_
// namespace, base units (seconds, bytes) in the name, _total on counters.
const namespace = "intercloud"

// Buckets of the histograms.
var (
	// latencyBuckets span a fast request (1 ms) to a slow stage (60 s).
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// freshnessBuckets span an end-to-end trip of a few ms to minutes
	// (an outage's backlog).
	freshnessBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 120, 300, 600}
	// sizeBuckets are records per group commit.
	sizeBuckets = prometheus.ExponentialBuckets(1, 2, 15) // 1 .. 16384
)

// NewRegistry returns a Prometheus registry with the Go runtime and
// process collectors, for one /metrics endpoint.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves a registry in the Prometheus text (or
// OpenMetrics, when asked) exposition format.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// CloudMetrics are the histograms of one cloud's stages, observed by thin
// call sites (hooks of ingest, load, replicate and publish). Every series
// carries the cloud's name as the "cloud" label.
type CloudMetrics struct {
	// IngestDuration is the latency of POST /v1/records by status code.
	IngestDuration *prometheus.HistogramVec
	// BatchRecords is the records per group-committed raw object.
	BatchRecords prometheus.Histogram
	// BatchBytes is the size of those objects.
	BatchBytes prometheus.Histogram
	// LoadDuration is one load invocation, by outcome (ok, error).
	LoadDuration *prometheus.HistogramVec
	// ApplyDuration is one replicated batch from read to committed on the
	// target, per stream.
	ApplyDuration *prometheus.HistogramVec
	// ReplicationLag is the age of a batch's last source change when it
	// committed on the target, per stream.
	ReplicationLag *prometheus.HistogramVec
	// Freshness is the end-to-end freshness: from a record's
	// acknowledgement to its aggregates written in the published results.
	Freshness prometheus.Histogram
}

// NewCloudMetrics registers a cloud's histograms on reg.
func NewCloudMetrics(reg prometheus.Registerer, cloud string) *CloudMetrics {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"cloud": cloud}, reg)
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		m := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
		reg.MustRegister(m)
		return m
	}
	hv := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		m := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
		reg.MustRegister(m)
		return m
	}
	return &CloudMetrics{
		IngestDuration: hv("ingest_request_duration_seconds", "Latency of ingest requests (POST /v1/records), by status code.", latencyBuckets, "code"),
		BatchRecords:   h("ingest_batch_records", "Records per group-committed raw object.", sizeBuckets),
		BatchBytes:     h("ingest_batch_bytes", "Bytes per group-committed raw object.", prometheus.ExponentialBuckets(256, 4, 10)),
		LoadDuration:   hv("load_duration_seconds", "Duration of one load invocation (one raw object), by outcome.", latencyBuckets, "outcome"),
		ApplyDuration:  hv("replication_apply_duration_seconds", "Time from reading a batch of changes to committing it on the target.", latencyBuckets, "stream"),
		ReplicationLag: hv("replication_lag_seconds", "Age of a batch's last source change when it committed on the target.", freshnessBuckets, "stream"),
		Freshness:      h("e2e_freshness_seconds", "End-to-end freshness: from a record's acknowledgement to its aggregates in the published results.", freshnessBuckets),
	}
}

// ObserveFreshness records the ages of records just published.
func (m *CloudMetrics) ObserveFreshness(ages []time.Duration) {
	for _, a := range ages {
		m.Freshness.Observe(a.Seconds())
	}
}

// SampleCount is how many observations a histogram holds.
func SampleCount(h prometheus.Histogram) uint64 {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// Quantile estimates the q-quantile (0..1) of a histogram from its buckets
// the way Prometheus' histogram_quantile does (linear within a bucket);
// NaN-free: 0 without observations.
func Quantile(h prometheus.Histogram, q float64) float64 {
	var m dto.Metric
	if err := h.Write(&m); err != nil || m.GetHistogram() == nil {
		return 0
	}
	hist := m.GetHistogram()
	total := float64(hist.GetSampleCount())
	if total == 0 {
		return 0
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range hist.GetBucket() {
		cnt := float64(b.GetCumulativeCount())
		if cnt >= rank {
			if cnt == prevCount {
				return b.GetUpperBound()
			}
			return prevBound + (b.GetUpperBound()-prevBound)*(rank-prevCount)/(cnt-prevCount)
		}
		prevBound, prevCount = b.GetUpperBound(), cnt
	}
	// Past the last bucket: its upper bound is the best estimate.
	return prevBound
}

// Sample is one value of a counter or gauge read from a component's
// counters when /metrics is scraped.
type Sample struct {
	Name   string // without the intercloud_ namespace
	Help   string
	Type   prometheus.ValueType // prometheus.CounterValue or GaugeValue
	Labels map[string]string
	Value  float64
}

// SampleCollector collects what fn returns at each scrape: counters and
// gauges that components keep themselves (their Stats). It is an
// unchecked collector: its series are known only when collected.
func SampleCollector(fn func() []Sample) prometheus.Collector { return sampleCollector(fn) }

type sampleCollector func() []Sample

func (sampleCollector) Describe(chan<- *prometheus.Desc) {}

func (c sampleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c() {
		keys := make([]string, 0, len(s.Labels))
		for k := range s.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		vals := make([]string, len(keys))
		for i, k := range keys {
			vals[i] = s.Labels[k]
		}
		desc := prometheus.NewDesc(prometheus.BuildFQName(namespace, "", s.Name), s.Help, slices.Clip(keys), nil)
		m, err := prometheus.NewConstMetric(desc, s.Type, s.Value, vals...)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(desc, err)
			continue
		}
		ch <- m
	}
}
