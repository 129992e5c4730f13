#!/usr/bin/env bash
# Side-by-side HTTP cache benchmark: nginx (proxy_cache with
# proxy_cache_revalidate on) and the intercloud edge in front of the same
# origin, measured in turn with wrk: cache hits of a 1 KiB and a 1 MiB
# object, and a revalidation-heavy mix (10,000 objects fresh for 1 s,
# requested at random). Installs nginx and wrk from Debian when missing.
# Opt-in (not part of make test): bash scripts/bench-edge.sh
#
# DURATION (default 10s), CONNECTIONS (64) and THREADS (2) tune wrk;
# every workload runs ROUNDS (3) times, nginx and the edge alternating, and
# the table shows the median round of each (the machine is shared).
# WORKERS (default: the number of cores) is both nginx's worker_processes
# and the edge's GOMAXPROCS, so both may run as many threads of work at
# once. Next to req/s and p99 the table gives the CPU time (user + system)
# each server spent per request, which depends far less than req/s on what
# else the machine runs. A second edge with its fast path off (net/http
# answers every request, -fast=false) runs alongside, for the fast path's
# own effect; with EDGE_BASE=PATH (an edgebench binary built from another
# commit) the second edge is that build instead, fast path on, for an A/B
# of two builds next to nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
REVAL_OBJECTS=${REVAL_OBJECTS:-10000}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-$(nproc)}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
bench_need nginx wrk
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
bench_setup bench-edge

go build -o "$dir/edgebench" ./edge/internal/edgebench
oport=$(freeport) eport=$(freeport) nport=$(freeport) sport=$(freeport)
"$dir/edgebench" origin -listen "127.0.0.1:$oport" & pids+=($!)
GOMAXPROCS=$WORKERS "$dir/edgebench" edge -listen "127.0.0.1:$eport" -origin "http://127.0.0.1:$oport" -disk "$dir/edge-cache" & pids+=($!)
if [[ -n ${EDGE_BASE:-} ]]; then
	second="edge (EDGE_BASE)"
	GOMAXPROCS=$WORKERS "$EDGE_BASE" edge -listen "127.0.0.1:$sport" -origin "http://127.0.0.1:$oport" -disk "$dir/edge-cache-base" & pids+=($!)
else
	second="edge without fast path"
	GOMAXPROCS=$WORKERS "$dir/edgebench" edge -fast=false -listen "127.0.0.1:$sport" -origin "http://127.0.0.1:$oport" -disk "$dir/edge-cache-nethttp" & pids+=($!)
fi

mkdir -p "$dir/nginx"
cat >"$dir/nginx.conf" <<CONF
worker_processes $WORKERS;
pid $dir/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	# Keep client connections as long as the edge does (nginx closes one
	# after 1,000 requests by default).
	keepalive_requests 1000000;
	client_body_temp_path $dir/nginx/client_body;
	proxy_temp_path $dir/nginx/proxy_temp;
	fastcgi_temp_path $dir/nginx/fastcgi_temp;
	uwsgi_temp_path $dir/nginx/uwsgi_temp;
	scgi_temp_path $dir/nginx/scgi_temp;
	proxy_cache_path $dir/nginx/cache levels=1:2 keys_zone=edge:64m max_size=4g inactive=60m use_temp_path=off;
	upstream origin { server 127.0.0.1:$oport; keepalive 64; }
	server {
		listen 127.0.0.1:$nport;
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache edge;
			proxy_cache_revalidate on;
			add_header X-Cache \$upstream_cache_status;
		}
	}
}
CONF
chmod -R a+rwX "$dir"
"$NGINX" -c "$dir/nginx.conf" -p "$dir/nginx"
waitport "$oport"; waitport "$eport"; waitport "$nport"; waitport "$sport"

cat >"$dir/reval.lua" <<LUA
math.randomseed(os.time())
request = function()
	return wrk.format("GET", "/reval/" .. math.random(0, $REVAL_OBJECTS - 1))
end
LUA

# warm NAME PORT: one request per object, so every run measures a warm cache.
warm() {
	local port=$2
	curl -s -o /dev/null "http://127.0.0.1:$port/1k/0"
	curl -s -o /dev/null "http://127.0.0.1:$port/1m/0"
	seq 0 $((REVAL_OBJECTS - 1)) | sed "s|^\(.*\)$|url = http://127.0.0.1:$port/reval/\1\noutput = /dev/null|" | curl -s -o /dev/null -K - --parallel --parallel-max 32 2>/dev/null || true
	local x1 x2
	x1=$(curl -s -o /dev/null -D - "http://127.0.0.1:$port/1k/0" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
	x2=$(curl -s -o /dev/null -D - "http://127.0.0.1:$port/1m/0" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
	echo "$1 warm: 1k $x1, 1m $x2" >&2
}

# cputicks PID: user + system clock ticks the process and its children
# (nginx's workers, cache manager and loader) have used, the children that
# exited included.
cputicks() {
	local t p
	t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat")
	for p in $(pgrep -P "$1"); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# measure PORT PATH|SCRIPT PID: prints "req/s p99 CPU-µs-per-request"
# (the CPU of the server process PID and its children during the run).
measure() {
	local port=$1 target=$2 pid=$3 out c0 c1
	c0=$(cputicks "$pid")
	if [[ $target == *.lua ]]; then
		out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$target" "http://127.0.0.1:$port")
	else
		out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$port$target")
	fi
	c1=$(cputicks "$pid")
	if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; fi
	awk -v ticks=$((c1 - c0)) -v tick="$TICK_US" '
		/^Requests\/sec/ { rps = $2 }
		/ requests in / { n = $1 }
		$1 == "99%" { p99 = $2 }
		END { printf "%s %s %.1f\n", rps, p99, (n > 0 ? ticks * tick / n : 0) }' <<<"$out"
}

origin_count() { curl -s "http://127.0.0.1:$oport/stats"; }

warm nginx "$nport"
warm edge "$eport"
warm "$second" "$sport"
nginx_pid=$(cat "$dir/nginx.pid")
edge_pid=${pids[1]} slow_pid=${pids[2]}

declare -A res
for name in "1 KiB hit:/1k/0" "1 MiB hit:/1m/0" "revalidation mix:$dir/reval.lua"; do
	label=${name%%:*} target=${name#*:}
	n="" e="" sl=""
	for round in $(seq "$ROUNDS"); do
		before=$(origin_count)
		nr=$(measure "$nport" "$target" "$nginx_pid")
		mid=$(origin_count)
		er=$(measure "$eport" "$target" "$edge_pid")
		after=$(origin_count)
		sr=$(measure "$sport" "$target" "$slow_pid")
		last=$(origin_count)
		n+="$nr"$'\n' e+="$er"$'\n' sl+="$sr"$'\n'
		echo "$label round $round (load $(cut -d' ' -f1 /proc/loadavg)): nginx $nr, edge $er, $second $sr (req/s p99 CPU-µs/req); origin before nginx $before, after nginx $mid, after edge $after, after $second $last" >&2
	done
	res[nginx,$label]=$(grep . <<<"$n" | median)
	res[edge,$label]=$(grep . <<<"$e" | median)
	res[slow,$label]=$(grep . <<<"$sl" | median)
done

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, median of $ROUNDS rounds (by req/s), $WORKERS nginx workers and GOMAXPROCS=$WORKERS, $(nproc) cores shared by wrk, the caches and the origin; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| workload | nginx req/s | nginx p99 | nginx CPU/req | edge req/s | edge p99 | edge CPU/req | edge / nginx req/s | nginx / edge CPU per req | $second: CPU/req |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for label in "1 KiB hit" "1 MiB hit" "revalidation mix"; do
	read -r nr np nc <<<"${res[nginx,$label]}"
	read -r er ep ec <<<"${res[edge,$label]}"
	read -r _ _ sc <<<"${res[slow,$label]}"
	awk -v nr="$nr" -v np="$np" -v nc="$nc" -v er="$er" -v ep="$ep" -v ec="$ec" -v sc="$sc" -v l="$label" 'BEGIN {
		printf "| %s | %s | %s | %s µs | %s | %s | %s µs | %s | %s | %s µs |\n", l, nr, np, nc, er, ep, ec,
			(nr > 0 ? sprintf("%.2f", er / nr) : "n/a"), (ec > 0 ? sprintf("%.2f", nc / ec) : "n/a"), sc }'
done
