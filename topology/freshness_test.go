package topology

import (
	"sync"
	"testing"
	"time"
)

func TestFreshness(t *testing.T) {
	var mu sync.Mutex
	var pub time.Time
	f := &freshness{known: true}
	if age, _, ok := f.age(time.Now()); age != 0 || !ok {
		t.Fatalf("before the publisher starts: %v %v", age, ok)
	}
	f.setPublisher(func() time.Time { mu.Lock(); defer mu.Unlock(); return pub })
	setPub := func(at time.Time) { mu.Lock(); pub = at; mu.Unlock() }
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if age, _, ok := f.age(t0); age != 0 || !ok {
		t.Fatalf("nothing acknowledged: %v %v", age, ok)
	}
	for i := range 100 {
		f.acked(t0.Add(time.Duration(i) * time.Millisecond)) // 10 entries at 10 ms granularity
	}
	if age, oldest, _ := f.age(t0.Add(5 * time.Second)); age != 5*time.Second || !oldest.Equal(t0) {
		t.Fatalf("nothing published: age %v oldest %v", age, oldest)
	}
	setPub(t0.Add(45 * time.Millisecond))
	if age, oldest, _ := f.age(t0.Add(5 * time.Second)); !oldest.Equal(t0.Add(50*time.Millisecond)) || age != 5*time.Second-50*time.Millisecond {
		t.Fatalf("half published: age %v oldest %v", age, oldest)
	}
	setPub(t0.Add(99 * time.Millisecond))
	if age, _, _ := f.age(t0.Add(time.Hour)); age != 0 {
		t.Fatalf("all published: age %v", age)
	}
	// Bounded memory whatever the rate.
	for i := range 2 * freshnessMaxEntries {
		f.acked(t0.Add(time.Second + time.Duration(i)*20*time.Millisecond))
	}
	if n := len(f.acks); n > freshnessMaxEntries {
		t.Fatalf("%d entries kept", n)
	}
	if _, oldest, _ := f.age(t0.Add(time.Hour)); !oldest.Equal(t0.Add(time.Second)) {
		t.Fatalf("oldest %v after the bound was reached", oldest)
	}
	// Without a publisher in the process nothing is known or kept.
	var none freshness
	none.acked(t0)
	if _, _, ok := none.age(t0); ok || len(none.acks) != 0 {
		t.Fatal("freshness known without a publisher")
	}
}
