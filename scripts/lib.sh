#!/usr/bin/env bash
# Shared setup of the opt-in benchmark scripts (bench-edge.sh,
# bench-ingest.sh); sourced by them, not run. After `bench_setup NAME`:
# $dir is a fresh temp dir, every pid appended to the array pids is killed
# (and waited for) on exit, as is the process of every *.pid file in $dir,
# and $dir is removed.

# bench_need CMD...: installs, from Debian, the packages of the same names
# whose commands are missing (sbin included).
bench_need() {
	local missing=() c
	for c in "$@"; do
		if ! command -v "$c" >/dev/null && [[ ! -x /usr/sbin/$c ]]; then missing+=("$c"); fi
	done
	if ((${#missing[@]})); then
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
	fi
}

# bench_setup NAME: the temp dir, the pids array and the exit trap.
bench_setup() {
	dir=$(mktemp -d "/tmp/$1.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
}

bench_cleanup() {
	local p f
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for f in "$dir"/*.pid; do
		if [[ -f $f ]]; then kill "$(cat "$f")" 2>/dev/null || true; fi
	done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}

# freeport: a TCP port free on 127.0.0.1 now.
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# waitport PORT: waits up to 10 s for something to listen on PORT.
waitport() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on $1" >&2
	return 1
}

# median: the middle line of its input, sorted numerically by the first
# field.
median() { sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'; }
