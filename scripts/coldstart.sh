#!/bin/sh
# coldstart.sh BIN DATA [serve flags...]
#
# One start and stop of a node (search off) on the store in DATA: prints
# the seconds from launch to "listening on", then the CPU time, minor page
# faults and most memory resident of the whole process (start and stop),
# as GNU time measures them, and the load average. Delete DATA/catalog.bin
# first to time the catalog rebuild from git at start.
set -eu
BIN=$1 DATA=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkfifo "$tmp/out"
s=$(date +%s.%N)
/usr/bin/time -f "cpu user %U sys %S minflt %R maxrss_kb %M" -o "$tmp/time" \
	"$BIN" serve --data "$DATA" --addr 127.0.0.1:0 --rate-limit=0 --no-search "$@" >"$tmp/out" 2>/dev/null &
tpid=$!
exec 3<"$tmp/out"
ready=
while IFS= read -r l <&3; do
	case $l in *"listening on"*)
		ready=$(echo "$(date +%s.%N) - $s" | bc)
		break
		;;
	esac
done
cat <&3 >/dev/null &
npid=$(pgrep -P "$tpid")
kill -INT "$npid"
wait "$tpid" || true
printf 'ready %s s  %s  load %s\n' "${ready:-never}" "$(cat "$tmp/time")" "$(cut -d' ' -f1-3 /proc/loadavg)"
