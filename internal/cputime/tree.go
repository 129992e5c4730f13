package cputime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat (100 on
// every Linux architecture Go runs on).
const clockTicks = 100

// Tree returns the user and system CPU time that process pid and every
// process below it (children, their children, ...) have used so far: each
// one's own (all its threads) and what the children it has waited for
// used, read from /proc (Linux only). A process below pid that exits
// between two readings moves from its own figures into its parent's once
// the parent has waited for it (a server does so at once), so the
// difference of two readings is what the whole tree spent between them:
// a database server with its backends, for instance. A process that exits
// while one reading is being taken may count twice or not at all in that
// reading.
func Tree(pid int) (time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("cputime: process %d: %w", pid, err)
	}
	type proc struct {
		ppid  int
		ticks int64
	}
	procs := map[int]proc{}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		ppid, ticks, err := parseStat(raw)
		if err != nil {
			return 0, fmt.Errorf("cputime: /proc/%d/stat: %w", p, err)
		}
		procs[p] = proc{ppid: ppid, ticks: ticks}
		children[ppid] = append(children[ppid], p)
	}
	if _, ok := procs[pid]; !ok {
		return 0, fmt.Errorf("cputime: process %d: no such process", pid)
	}
	var ticks int64
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], children[p]...)
		ticks += procs[p].ticks
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// parseStat returns the parent's pid and the sum of utime, stime, cutime
// and cstime (in clock ticks) of the content of a /proc/PID/stat file.
func parseStat(raw []byte) (ppid int, ticks int64, err error) {
	// The command name, in parentheses, may hold spaces and parentheses:
	// the fields follow the last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, 0, errors.New("no command name")
	}
	// state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime ...
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("%d fields after the command name, want at least 15", len(f))
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("ppid: %w", err)
	}
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("times: %w", err)
		}
		ticks += n
	}
	return ppid, ticks, nil
}
