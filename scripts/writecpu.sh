#!/bin/sh
# writecpu.sh BIN DATA DURATION [serve flags...]
#
# Starts a node of BIN on the store in DATA, has 64 clients of the same
# binary write 512-byte contexts to it for DURATION (nexus bench), stops
# it, and prints the writes acknowledged per second, the node's CPU (user
# + system, from /proc) per write over the load only, and the load
# average. Run two builds in turns on the same store to compare them.
set -eu
BIN=$1 DATA=$2 DUR=$3
shift 3
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
mkfifo "$tmp/out"
"$BIN" serve --data "$DATA" --addr 127.0.0.1:0 --rate-limit=0 "$@" >"$tmp/out" 2>&1 &
pid=$!
exec 3<"$tmp/out"
addr=
while IFS= read -r l <&3; do
	case $l in *"listening on"*)
		addr=$(echo "$l" | grep -o '127\.0\.0\.1:[0-9]*' | head -1)
		break
		;;
	esac
done
cat <&3 >/dev/null &
[ -n "$addr" ] || { echo "the node did not start" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
"$BIN" bench --server "http://$addr" --writers 64 --duration "$DUR" >"$tmp/bench" 2>&1 || true
t1=$(ticks)
kill -INT "$pid"
wait "$pid" || true
pid=
line=$(grep '^writes' "$tmp/bench" || true)
ok=$(echo "$line" | sed -n 's/.*: \([0-9]*\) ok.*/\1/p')
rate=$(echo "$line" | sed -n 's/.*: \([0-9]*\)\/s;.*/\1/p')
if [ -z "$ok" ] || [ "$ok" -eq 0 ]; then
	echo "no write acknowledged:" >&2
	cat "$tmp/bench" >&2
	exit 1
fi
echo "$rate writes/s  $(( (t1 - t0) * 1000000 / hz / ok )) µs of node CPU per write  load $(cut -d' ' -f1-3 /proc/loadavg)"
