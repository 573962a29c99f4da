#!/bin/sh
# packpileup.sh OLD NEW [DIR] — packs and open files of a node whose backups, mirror pushes and
# deep checks run back to back while 16 writers write, for two builds of nexus (docs/BENCHMARKS.md,
# "Merges during backups, mirror pushes and deep checks").
#
# It fills one store with NEW for 30 s (64 writers, 512-byte contents; the default rate limit of
# 1,000 requests/s per principal bounds the fill, ≈ 31,000 contexts), then for each
# build in turn (OLD, NEW, OLD, NEW) copies it, serves the copy with --backup-interval,
# --mirror-interval and --scrub-interval of 1 s, runs `nexus bench --writers 16` for 60 s, and
# samples the server's pack files and open file descriptors every second. One line per run:
# build, the most packs and open files seen, the packs at the end, and the bench's writes line.
set -eu
old=$1 new=$2 dir=${3:-/tmp/packpileup}
port=17499
rm -rf "$dir" && mkdir -p "$dir"

serve() { # binary data [flags...]
	bin=$1 data=$2; shift 2
	"$bin" serve --addr 127.0.0.1:$port --data "$data" --no-search "$@" >"$data.log" 2>&1 &
	pid=$!
	for _ in $(seq 600); do
		curl -sf http://127.0.0.1:$port/health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "server did not start: $(tail -5 "$data.log")" >&2
	exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

serve "$new" "$dir/fill"
"$new" bench --server http://127.0.0.1:$port --writers 64 --size 512 --duration 30s >"$dir/fill.txt"
stop

for b in old new old new; do
	eval bin=\$$b
	data=$dir/run-$b
	rm -rf "$data" "$dir/mirror.git" && cp -a "$dir/fill" "$data"
	serve "$bin" "$data" --backup-interval 1s --backup-dir "$dir/backups-$b" --mirror "$dir/mirror.git" --mirror-interval 1s --scrub-interval 1s
	"$bin" bench --server http://127.0.0.1:$port --writers 16 --size 512 --duration 60s >"$data.txt" &
	load=$!
	maxp=0 maxf=0
	while kill -0 $load 2>/dev/null; do
		p=$(ls "$data/repo.git/objects/pack" | grep -c '\.pack$' || true)
		f=$(ls /proc/$pid/fd | wc -l)
		[ "$p" -gt "$maxp" ] && maxp=$p
		[ "$f" -gt "$maxf" ] && maxf=$f
		sleep 1
	done
	wait $load
	p=$(ls "$data/repo.git/objects/pack" | grep -c '\.pack$' || true)
	stop
	echo "$b: max_packs=$maxp max_open_files=$maxf packs_at_end=$p; $(cat "$data.txt")"
	rm -rf "$data" "$dir/backups-$b"
done
