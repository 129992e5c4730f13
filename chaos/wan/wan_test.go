package wan

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func proxy(t *testing.T, target string, l Link) string {
	t.Helper()
	p, err := New(target, l)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = p.Serve(ctx, ln) }()
	return ln.Addr().String()
}

// TestLatencyAndJitter: a round trip through the proxy takes twice the
// delay, give or take the jitter, on top of what loopback costs.
func TestLatencyAndJitter(t *testing.T) {
	addr := proxy(t, echo(t), Link{Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, Seed: 1})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rtts []time.Duration
	buf := make([]byte, 1)
	for range 20 {
		start := time.Now()
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	t.Logf("round trips: min %v, median %v, max %v", rtts[0], rtts[len(rtts)/2], rtts[len(rtts)-1])
	if rtts[0] < 60*time.Millisecond {
		t.Errorf("fastest round trip %v, want at least 2×(40-10) ms", rtts[0])
	}
	if med := rtts[len(rtts)/2]; med > 200*time.Millisecond {
		t.Errorf("median round trip %v, want about 80 ms", med)
	}
}

// TestBytesInOrderWithLoss: whatever is held back, every byte arrives once
// and in order.
func TestBytesInOrderWithLoss(t *testing.T) {
	addr := proxy(t, echo(t), Link{Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.2, Retransmit: 5 * time.Millisecond, Seed: 7})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	go func() {
		for i := 0; i < len(data); i += 1000 {
			if _, err := c.Write(data[i:min(len(data), i+1000)]); err != nil {
				return
			}
		}
	}()
	got := make([]byte, len(data))
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes changed or reordered on the way")
	}
}

func TestValidate(t *testing.T) {
	for _, l := range []Link{
		{Delay: -1},
		{Delay: time.Millisecond, Jitter: 2 * time.Millisecond},
		{Loss: 1},
		{Loss: -0.1},
		{Retransmit: -1},
	} {
		if _, err := New("127.0.0.1:1", l); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}
