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
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
REVAL_OBJECTS=${REVAL_OBJECTS:-10000}
ROUNDS=${ROUNDS:-3}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
bench_need nginx wrk
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
bench_setup bench-edge

go build -o "$dir/edgebench" ./edge/internal/edgebench
oport=$(freeport) eport=$(freeport) nport=$(freeport)
"$dir/edgebench" origin -listen "127.0.0.1:$oport" & pids+=($!)
"$dir/edgebench" edge -listen "127.0.0.1:$eport" -origin "http://127.0.0.1:$oport" -disk "$dir/edge-cache" & pids+=($!)

mkdir -p "$dir/nginx"
cat >"$dir/nginx.conf" <<CONF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
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
waitport "$oport"; waitport "$eport"; waitport "$nport"

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

# measure PORT PATH|SCRIPT: prints "req/s p99"
measure() {
	local port=$1 target=$2 out
	if [[ $target == *.lua ]]; then
		out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$target" "http://127.0.0.1:$port")
	else
		out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$port$target")
	fi
	if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; fi
	local rps p99
	rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
	p99=$(awk '$1=="99%"{print $2}' <<<"$out")
	echo "$rps $p99"
}

origin_count() { curl -s "http://127.0.0.1:$oport/stats"; }

warm nginx "$nport"
warm edge "$eport"

declare -A res
for name in "1 KiB hit:/1k/0" "1 MiB hit:/1m/0" "revalidation mix:$dir/reval.lua"; do
	label=${name%%:*} target=${name#*:}
	n="" e=""
	for round in $(seq "$ROUNDS"); do
		before=$(origin_count)
		n+="$(measure "$nport" "$target")"$'\n'
		mid=$(origin_count)
		e+="$(measure "$eport" "$target")"$'\n'
		after=$(origin_count)
		echo "$label round $round: origin before nginx $before, after nginx $mid, after edge $after" >&2
	done
	res[nginx,$label]=$(grep . <<<"$n" | median)
	res[edge,$label]=$(grep . <<<"$e" | median)
done

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, median of $ROUNDS rounds, $(nproc) cores shared by wrk, the cache and the origin"
echo
echo "| workload | nginx req/s | nginx p99 | edge req/s | edge p99 | edge / nginx |"
echo "|---|---|---|---|---|---|"
for label in "1 KiB hit" "1 MiB hit" "revalidation mix"; do
	read -r nr np <<<"${res[nginx,$label]}"
	read -r er ep <<<"${res[edge,$label]}"
	ratio=$(awk -v a="$er" -v b="$nr" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }')
	echo "| $label | $nr | $np | $er | $ep | $ratio |"
done
