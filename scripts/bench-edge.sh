#!/usr/bin/env bash
# Side-by-side HTTP cache benchmark: nginx (proxy_cache with
# proxy_cache_revalidate on) and the intercloud edge in front of the same
# origin, measured in turn with wrk: cache hits of a 1 KiB and a 1 MiB
# object, and a revalidation-heavy mix (10,000 objects fresh for 1 s,
# requested at random). Installs nginx and wrk from Debian when missing.
# Opt-in (not part of make test): bash scripts/bench-edge.sh
#
# Two measurements per workload and round, nginx and the edge alternating:
#  - saturated: wrk in closed loop (every connection sends its next
#    request as soon as the answer is in), req/s, p99 and the CPU time
#    (user + system) each server spent per request, which depends far less
#    than req/s on what else the machine runs. A faster server is measured
#    at a higher rate here, so its p99 is taken at a different load;
#  - rate-matched: wrk paced by a Lua delay() hook so that both servers
#    are offered the same request rate, a share (RATES) of the req/s nginx
#    reached saturated in the same round; p50 and p99 of each at each rate.
# Every figure is the median round (the machine may be shared).
#
# Environment knobs:
#   DURATION (10s)      length of every wrk run
#   CONNECTIONS (64)    wrk's connections (-c)
#   THREADS (2)         wrk's threads (-t)
#   ROUNDS (3)          rounds per workload
#   WORKERS (cores)     nginx's worker_processes and the edges' GOMAXPROCS
#   WORKLOADS           which workloads to run, any of "1k 1m reval"
#                       (default all three)
#   RATES (50 75 90)    offered rates of the rate-matched runs, in percent
#                       of nginx's saturated req/s; empty: no paced runs
#   REVAL_OBJECTS       objects of the revalidation mix (10000)
#   WRK_CPUS            when set, wrk runs under taskset -c WRK_CPUS (for
#                       both servers alike), e.g. WRK_CPUS=1
#   EDGE_BASE=PATH      the second edge is this edgebench binary (built
#                       from another commit), fast path on, for an A/B of
#                       two builds; without it the second edge is this
#                       build with its fast path off (-fast=false: net/http
#                       answers every request). The second edge runs only
#                       in the saturated measurement.
#
# Quick check: DURATION=5s ROUNDS=1 bash scripts/bench-edge.sh (about 3
# minutes); the defaults take about 15 (nine wrk runs per workload and
# round).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
REVAL_OBJECTS=${REVAL_OBJECTS:-10000}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-$(nproc)}
WORKLOADS=${WORKLOADS:-1k 1m reval}
RATES=${RATES-50 75 90}
WRK_CPUS=${WRK_CPUS:-}

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

# pace.lua: each wrk thread starts requests on a fixed schedule of
# RATE/THREADS a second (script arguments: RATE THREADS); a connection
# whose answer is in waits for the next free slot of its thread (wrk's
# delay() hook, in whole milliseconds), so the rate offered does not
# depend on the server's speed as long as the connections suffice. wrk
# measures a request's latency from when it is sent.
cat >"$dir/pace.lua" <<'LUA'
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } pace_timespec;
int clock_gettime(int clk, pace_timespec *ts);
]]
local ts = ffi.new("pace_timespec")
local function now()
	ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC, in ms
	return tonumber(ts.tv_sec) * 1e3 + tonumber(ts.tv_nsec) / 1e6
end
local interval, slot
function init(args)
	interval = 1e3 * tonumber(args[2]) / tonumber(args[1])
end
function delay()
	local t = now()
	slot = (slot or t) + interval
	local d = slot - t
	if d <= 0 then return 0 end
	return math.floor(d + 0.5)
end
LUA
cat "$dir/reval.lua" "$dir/pace.lua" >"$dir/reval-pace.lua"

# warm NAME PORT: one request per object, so every run measures a warm cache.
warm() {
	local port=$2
	curl -s -o /dev/null "http://127.0.0.1:$port/1k/0"
	curl -s -o /dev/null "http://127.0.0.1:$port/1m/0"
	if [[ " $WORKLOADS " == *" reval "* ]]; then
		seq 0 $((REVAL_OBJECTS - 1)) | sed "s|^\(.*\)$|url = http://127.0.0.1:$port/reval/\1\noutput = /dev/null|" | curl -s -o /dev/null -K - --parallel --parallel-max 32 2>/dev/null || true
	fi
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

wrkcmd=(wrk)
if [[ -n $WRK_CPUS ]]; then wrkcmd=(taskset -c "$WRK_CPUS" wrk); fi

# measure PORT PATH|SCRIPT PID [RATE]: prints "req/s p99 CPU-µs-per-request
# p50" (the CPU of the server process PID and its children during the
# run); with RATE, wrk is paced to RATE requests a second in all.
measure() {
	local port=$1 target=$2 pid=$3 rate=${4:-} out c0 c1 args=()
	if [[ $target == *.lua ]]; then
		args=(-s "$target")
		if [[ -n $rate ]]; then args=(-s "${target%.lua}-pace.lua"); fi
		target=""
	elif [[ -n $rate ]]; then
		args=(-s "$dir/pace.lua")
	fi
	if [[ -n $rate ]]; then args+=("http://127.0.0.1:$port$target" -- "$rate" "$THREADS"); else args+=("http://127.0.0.1:$port$target"); fi
	c0=$(cputicks "$pid")
	out=$("${wrkcmd[@]}" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${args[@]}")
	c1=$(cputicks "$pid")
	if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; fi
	awk -v ticks=$((c1 - c0)) -v tick="$TICK_US" '
		/^Requests\/sec/ { rps = $2 }
		/ requests in / { n = $1 }
		$1 == "50%" { p50 = $2 }
		$1 == "99%" { p99 = $2 }
		END { printf "%s %s %.1f %s\n", rps, p99, (n > 0 ? ticks * tick / n : 0), p50 }' <<<"$out"
}

# ms DURATION: a wrk latency (850.00us, 1.23ms, 2.01s) in milliseconds.
ms() {
	awk -v d="$1" 'BEGIN {
		v = d + 0; u = d; sub(/^[0-9.]+/, "", u)
		if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
		printf "%.2f\n", v }'
}

# col N [ms] <<<ROWS: the median of column N of ROWS (as ms with "ms").
col() {
	awk -v c="$1" '{ print $c }' | while read -r v; do
		if [[ ${2:-} == ms ]]; then ms "$v"; else echo "$v"; fi
	done | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'
}

origin_count() { curl -s "http://127.0.0.1:$oport/stats"; }

warm nginx "$nport"
warm edge "$eport"
warm "$second" "$sport"
nginx_pid=$(cat "$dir/nginx.pid")
edge_pid=${pids[1]} slow_pid=${pids[2]}

declare -A target=([1k]=/1k/0 [1m]=/1m/0 [reval]="$dir/reval.lua")
declare -A label=([1k]="1 KiB hit" [1m]="1 MiB hit" [reval]="revalidation mix")
declare -A res
for w in $WORKLOADS; do
	if [[ -z ${target[$w]:-} ]]; then
		echo "unknown workload $w (want 1k, 1m or reval)" >&2
		exit 1
	fi
	n="" e="" sl=""
	declare -A paced=()
	for round in $(seq "$ROUNDS"); do
		before=$(origin_count)
		nr=$(measure "$nport" "${target[$w]}" "$nginx_pid")
		mid=$(origin_count)
		er=$(measure "$eport" "${target[$w]}" "$edge_pid")
		after=$(origin_count)
		sr=$(measure "$sport" "${target[$w]}" "$slow_pid")
		last=$(origin_count)
		n+="$nr"$'\n' e+="$er"$'\n' sl+="$sr"$'\n'
		echo "${label[$w]} round $round (load $(cut -d' ' -f1 /proc/loadavg)): nginx $nr, edge $er, $second $sr (req/s p99 CPU-µs/req p50); origin before nginx $before, after nginx $mid, after edge $after, after $second $last" >&2
		nrate=${nr%% *}
		for pct in $RATES; do
			rate=$(awk -v r="$nrate" -v p="$pct" 'BEGIN { printf "%d", r * p / 100 }')
			# Alternate which server goes first from one rate to the next.
			if (((round + pct) % 2)); then
				pe=$(measure "$eport" "${target[$w]}" "$edge_pid" "$rate")
				pn=$(measure "$nport" "${target[$w]}" "$nginx_pid" "$rate")
			else
				pn=$(measure "$nport" "${target[$w]}" "$nginx_pid" "$rate")
				pe=$(measure "$eport" "${target[$w]}" "$edge_pid" "$rate")
			fi
			paced[$pct]+="$rate $pn $pe"$'\n'
			echo "${label[$w]} round $round at $pct % = $rate req/s offered (load $(cut -d' ' -f1 /proc/loadavg)): nginx $pn, edge $pe (req/s p99 CPU-µs/req p50)" >&2
		done
	done
	res[nginx,$w]=$(grep . <<<"$n" | median)
	res[edge,$w]=$(grep . <<<"$e" | median)
	res[slow,$w]=$(grep . <<<"$sl" | median)
	for pct in $RATES; do
		# Median round by offered rate; p50 and p99 each the median of
		# its own over the rounds.
		rows=$(grep . <<<"${paced[$pct]}")
		res[paced,$w,$pct]="$(col 1 <<<"$rows") $(col 2 <<<"$rows") $(col 5 ms <<<"$rows") $(col 3 ms <<<"$rows") $(col 6 <<<"$rows") $(col 9 ms <<<"$rows") $(col 7 ms <<<"$rows")"
	done
	unset paced
done

echo
echo "Saturated: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency${WRK_CPUS:+ under taskset -c $WRK_CPUS}, median of $ROUNDS rounds (by req/s), $WORKERS nginx workers and GOMAXPROCS=$WORKERS, $(nproc) cores shared by wrk, the caches and the origin; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| workload | nginx req/s | nginx p99 | nginx CPU/req | edge req/s | edge p99 | edge CPU/req | edge / nginx req/s | nginx / edge CPU per req | $second: CPU/req |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for w in $WORKLOADS; do
	read -r nr np nc _ <<<"${res[nginx,$w]}"
	read -r er ep ec _ <<<"${res[edge,$w]}"
	read -r _ _ sc _ <<<"${res[slow,$w]}"
	awk -v nr="$nr" -v np="$np" -v nc="$nc" -v er="$er" -v ep="$ep" -v ec="$ec" -v sc="$sc" -v l="${label[$w]}" 'BEGIN {
		printf "| %s | %s | %s | %s µs | %s | %s | %s µs | %s | %s | %s µs |\n", l, nr, np, nc, er, ep, ec,
			(nr > 0 ? sprintf("%.2f", er / nr) : "n/a"), (ec > 0 ? sprintf("%.2f", nc / ec) : "n/a"), sc }'
done
if [[ -n $RATES ]]; then
	echo
	echo "Rate-matched: the same wrk paced (Lua delay()) to a share of nginx's saturated req/s of the same round, both servers offered the same rate; medians over $ROUNDS rounds of each column, latencies in ms"
	echo
	echo "| workload | offered | nginx req/s | nginx p50 | nginx p99 | edge req/s | edge p50 | edge p99 | edge / nginx p99 |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for w in $WORKLOADS; do
		for pct in $RATES; do
			read -r rate nr np50 np99 er ep50 ep99 <<<"${res[paced,$w,$pct]}"
			awk -v l="${label[$w]}" -v pct="$pct" -v rate="$rate" -v nr="$nr" -v np50="$np50" -v np99="$np99" -v er="$er" -v ep50="$ep50" -v ep99="$ep99" 'BEGIN {
				printf "| %s | %s %% (%s req/s) | %s | %s | %s | %s | %s | %s | %s |\n", l, pct, rate, nr, np50, np99, er, ep50, ep99,
					(np99 > 0 ? sprintf("%.2f", ep99 / np99) : "n/a") }'
		done
	done
fi
