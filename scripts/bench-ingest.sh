#!/usr/bin/env bash
# Side-by-side durable ingest benchmark: the ingest API (auth, validation,
# group commit into one object per batch on the file store, the object and
# its directory fsynced before the 202) next to the floor, a trivial Go
# server that appends each request body to one file and fsyncs it before
# its 202. Both take the same NDJSON bodies (100 and 1,000 records) from
# the same wrk clients (8 and 32 connections); the table gives records/s
# and p99 of each, and the API's share of the floor.
# Opt-in (not part of make test): bash scripts/bench-ingest.sh
#
# DURATION (default 10s) and THREADS (2) tune wrk; every case runs ROUNDS
# (default 3) times, floor and API alternating, and the table shows the
# median round of each (the machine is shared). PROFILE=1 also takes a
# 10 s CPU profile of the API under 32 clients of PROFILE_RECORDS (default
# 1000) records per request and prints its top functions.
#
# BASE=<git revision> also builds the API of that revision and runs it in
# the same rounds (floor, base, API alternating), with its columns beside
# the API's: a before/after comparison under the same load.
# ROUNDS_OUT=FILE (an absolute path) appends every round, one line each:
# records/request, clients, f (floor) / b (base) / a (API), records/s,
# p99 ms, non-2xx, the 1-minute load average when the round ended.
# After the medians, a second table counts, per case, the rounds in which
# the API (and the base) met the target against the floor of the same
# round (>= 0.5x its records/s at <= 2x its p99), with the range of the
# load average over the case's rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PROFILE=${PROFILE:-0}
PROFILE_RECORDS=${PROFILE_RECORDS:-1000}
BASE=${BASE:-}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
bench_need wrk
bench_setup bench-ingest

go build -o "$dir/ingestbench" ./ingest/internal/ingestbench
if [[ -n $BASE ]]; then
	mkdir "$dir/base-src"
	git archive "$BASE" | tar -x -C "$dir/base-src"
	(cd "$dir/base-src" && go build -o "$dir/ingestbench-base" ./ingest/internal/ingestbench)
fi
for n in 100 1000 "$PROFILE_RECORDS"; do "$dir/ingestbench" body -records "$n" >"$dir/body-$n.ndjson"; done
cat >"$dir/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
wrk.headers["Authorization"] = "Bearer bench"
local f = assert(io.open(os.getenv("BODY"), "r"))
wrk.body = f:read("*a")
f:close()
LUA

fport=$(freeport) aport=$(freeport) pport=$(freeport)
mkdir -p "$dir/floor" "$dir/api"
"$dir/ingestbench" floor -listen "127.0.0.1:$fport" -dir "$dir/floor" & pids+=($!)
"$dir/ingestbench" api -listen "127.0.0.1:$aport" -dir "$dir/api" -pprof "127.0.0.1:$pport" & pids+=($!)
waitport "$fport"
waitport "$aport"
if [[ -n $BASE ]]; then
	bport=$(freeport)
	mkdir -p "$dir/base"
	"$dir/ingestbench-base" api -listen "127.0.0.1:$bport" -dir "$dir/base" & pids+=($!)
	waitport "$bport"
fi

# run URL RECORDS CONNECTIONS -> "records/s p99_ms non2xx load1"
run() {
	local out load
	out=$(BODY="$dir/body-$2.ndjson" wrk -t"$THREADS" -c"$3" -d"$DURATION" --latency -s "$dir/post.lua" "$1/v1/records")
	read -r load _ </proc/loadavg
	awk -v recs="$2" -v la="$load" '
		function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
		/Requests\/sec:/ { rps = $2 }
		/^ +99%/ { p99 = ms($2) }
		/Non-2xx/ { bad = $NF }
		END { printf "%.0f %.1f %d %s\n", rps*recs, p99, bad+0, la }' <<<"$out"
}

# met FLOOR_FILE OTHER_FILE -> "rounds_met rounds": the rounds (line by
# line, the same round of each) in which OTHER met the target.
met() {
	paste -d' ' "$1" "$2" | awk '{ n++; if ($5 >= 0.5 * $1 && $6 <= 2 * $2) m++ } END { printf "%d %d\n", m, n }'
}

# pick FILE RECORDS_PER_S: the p99 of the round with that records/s (the
# median round's).
pick() { sort -n "$1" | awk -v r="$2" '$1 == r { print $2; exit }'; }

if [[ -n $BASE ]]; then
	printf '| records/request | clients | floor records/s | floor p99 | base records/s | base p99 | API records/s | API p99 | base/floor records/s | base/floor p99 | API/floor records/s | API/floor p99 |\n'
	printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
else
	printf '| records/request | clients | floor records/s | floor p99 | API records/s | API p99 | API/floor records/s | API/floor p99 |\n'
	printf '|---|---|---|---|---|---|---|---|\n'
fi
: >"$dir/verdicts.txt"
for recs in 100 1000; do
	for conns in 8 32; do
		: >"$dir/f.txt"
		: >"$dir/a.txt"
		: >"$dir/b.txt"
		for _ in $(seq "$ROUNDS"); do
			run "http://127.0.0.1:$fport" "$recs" "$conns" >>"$dir/f.txt"
			if [[ -n $BASE ]]; then run "http://127.0.0.1:$bport" "$recs" "$conns" >>"$dir/b.txt"; fi
			run "http://127.0.0.1:$aport" "$recs" "$conns" >>"$dir/a.txt"
		done
		read -r frps _ fbad _ <<<"$(median <"$dir/f.txt")"
		read -r arps _ abad _ <<<"$(median <"$dir/a.txt")"
		if [[ $fbad != 0 || $abad != 0 ]]; then echo "non-2xx answers: floor $fbad, API $abad" >&2; fi
		fp99=$(pick "$dir/f.txt" "$frps")
		ap99=$(pick "$dir/a.txt" "$arps")
		if [[ -n $BASE ]]; then
			read -r brps _ bbad _ <<<"$(median <"$dir/b.txt")"
			if [[ $bbad != 0 ]]; then echo "non-2xx answers: base $bbad" >&2; fi
			bp99=$(pick "$dir/b.txt" "$brps")
			awk -v rc="$recs" -v c="$conns" -v fr="$frps" -v fp="$fp99" -v br="$brps" -v bp="$bp99" -v ar="$arps" -v ap="$ap99" 'BEGIN {
				printf "| %d | %d | %d | %.1f ms | %d | %.1f ms | %d | %.1f ms | %.2f | %.2f | %.2f | %.2f |\n", rc, c, fr, fp, br, bp, ar, ap, br/fr, bp/fp, ar/fr, ap/fp }'
		else
			awk -v rc="$recs" -v c="$conns" -v fr="$frps" -v fp="$fp99" -v ar="$arps" -v ap="$ap99" 'BEGIN {
				printf "| %d | %d | %d | %.1f ms | %d | %.1f ms | %.2f | %.2f |\n", rc, c, fr, fp, ar, ap, ar/fr, ap/fp }'
		fi
		read -r am an <<<"$(met "$dir/f.txt" "$dir/a.txt")"
		bm=-
		if [[ -n $BASE ]]; then read -r bm _ <<<"$(met "$dir/f.txt" "$dir/b.txt")"; fi
		loads=$(cat "$dir/f.txt" "$dir/b.txt" "$dir/a.txt" | awk 'NR == 1 || $4 < lo { lo = $4 } NR == 1 || $4 > hi { hi = $4 } END { printf "%s-%s", lo, hi }')
		echo "$recs $conns $an $am $bm $loads" >>"$dir/verdicts.txt"
		if [[ -n ${ROUNDS_OUT:-} ]]; then
			for who in f b a; do
				if [[ -s $dir/$who.txt ]]; then sed "s/^/$recs $conns $who /" "$dir/$who.txt" >>"$ROUNDS_OUT"; fi
			done
		fi
	done
done

echo
if [[ -n $BASE ]]; then
	printf '| records/request | clients | rounds | API met the target | base met the target | load average |\n|---|---|---|---|---|---|\n'
	awk '{ printf "| %d | %d | %d | %d | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$dir/verdicts.txt"
else
	printf '| records/request | clients | rounds | API met the target | load average |\n|---|---|---|---|---|\n'
	awk '{ printf "| %d | %d | %d | %d | %s |\n", $1, $2, $3, $4, $6 }' "$dir/verdicts.txt"
fi

if [[ $PROFILE == 1 ]]; then
	BODY="$dir/body-$PROFILE_RECORDS.ndjson" wrk -t"$THREADS" -c32 -d12s -s "$dir/post.lua" "http://127.0.0.1:$aport/v1/records" >/dev/null &
	wrkpid=$!
	sleep 1
	curl -s -o "$dir/cpu.pprof" "http://127.0.0.1:$pport/debug/pprof/profile?seconds=10"
	wait "$wrkpid"
	go tool pprof -top -nodecount=25 "$dir/ingestbench" "$dir/cpu.pprof" 2>/dev/null | head -35
	go tool pprof -top -cum -nodecount=25 "$dir/ingestbench" "$dir/cpu.pprof" 2>/dev/null | sed -n '6,35p'
fi
