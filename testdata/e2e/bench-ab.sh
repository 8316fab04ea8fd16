#!/usr/bin/env bash
# bench-ab.sh - two natalg binaries, A and B, on the same router topology
# (testdata/e2e/lib.sh), alternating every round (A first in odd rounds):
# an FTP download (checked by SHA-256) and an iperf3 UDP flood of 1200-byte
# datagrams, both through natalg run's NFQUEUE path. Prints every round and
# the medians. For comparing a change to the datapath with the commit
# before it (bench/README.md, "NFQUEUE path, before and after"). Besides
# the rates it prints natalg's CPU time per queued packet, which other load
# on the machine disturbs much less.
#
# Usage: sudo testdata/e2e/bench-ab.sh A B [ROUNDS] [MIB]   (default 5 rounds, 128 MiB)
#   OFFLOADS=on|off    TSO/GSO/GRO and checksum offloads on the veths (default off:
#                      wire-sized packets, the packet rate is what is measured)
#   UDP_SECONDS=N      length of each UDP flood (default 5)
LIB_NAME=bench-ab
if [[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

A=${1:?usage: bench-ab.sh A B [ROUNDS] [MIB]}
B=${2:?usage: bench-ab.sh A B [ROUNDS] [MIB]}
ROUNDS=${3:-5}
MIB=${4:-128}
OFFLOADS=${OFFLOADS:-off}
UDP_SECONDS=${UDP_SECONDS:-5}
[[ -x $A && -x $B ]] || die "A and B must be natalg binaries"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $MIB =~ ^[1-9][0-9]*$ ]] || die "MIB must be a positive integer"
need iperf3 iperf3
need python3 python3

topology_up "$OFFLOADS"
start_vsftpd "$NS_OUT"
random_file "$FTPD_ROOT/pub/big.bin" "$MIB"
WANT=$(sha256sum <"$FTPD_ROOT/pub/big.bin" | cut -d' ' -f1)
nsx "$NS_OUT" iperf3 -s -B "$OUT_HOST" -p 5201 >"$WORK/iperf3.log" 2>&1 &
PIDS+=("$!")
sleep 0.5
NATALG=$A
natalg_rules_on >/dev/null

# ftp: one download, prints MB/s (10^6 bytes per second)
ftp() {
	local got=$WORK/got.bin speed sum
	rm -f "$got"
	speed=$(nsx "$NS_IN" timeout 600 curl -sS --max-time 590 -o "$got" -w '%{speed_download}' "ftp://$OUT_HOST/pub/big.bin") ||
		die "curl failed"
	sum=$(sha256sum <"$got" | cut -d' ' -f1)
	[[ $sum == "$WANT" ]] || die "downloaded file differs (sha256 $sum, want $WANT)"
	rm -f "$got"
	awk -v s="$speed" 'BEGIN { printf "%.1f\n", s / 1e6 }'
}

# udp: one flood, prints the datagrams per second the server received
udp() {
	nsx "$NS_IN" timeout $((UDP_SECONDS + 30)) iperf3 -c "$OUT_HOST" -p 5201 -u -l 1200 -b 0 -t "$UDP_SECONDS" --json >"$WORK/udp.json" ||
		die "iperf3 failed: $(tail -c 300 "$WORK/udp.json")"
	python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["end"]["sum"]
print("%.0f" % ((s["packets"] - s["lost_packets"]) / s["seconds"]))' "$WORK/udp.json"
}

# cpu_ticks: CPU time (user + system, clock ticks) natalg run has used so far
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$NATALG_PID/stat"; }
# queued: packets natalg's queues have received so far
queued() {
	nsx "$NS_R" curl -sS --max-time 5 http://127.0.0.1:9108/metrics |
		awk '/^natalg_nfqueue_packets_total\{event="received"\}/ { print $2 }'
}
# per_packet T0 T1 P0 P1: microseconds of natalg CPU per queued packet
per_packet() {
	awk -v t="$(($2 - $1))" -v p="$(($4 - $3))" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (p > 0) printf "%.2f\n", t / hz * 1e6 / p; else print "n/a" }'
}

# one BIN: prints "ftp udp ftp-cpu udp-cpu" for one round of BIN: the
# rates, then natalg's CPU time per queued packet (microseconds, user and
# system: the system part includes the kernel's forwarding of each
# reinjected packet). On a machine others load, the CPU time per packet
# is the steadier figure.
one() {
	NATALG=$1
	natalg_start
	local f u t0 t1 t2 p0 p1 p2
	t0=$(cpu_ticks) p0=$(queued)
	f=$(ftp)
	t1=$(cpu_ticks) p1=$(queued)
	u=$(udp)
	t2=$(cpu_ticks) p2=$(queued)
	natalg_stop
	flush_conntrack
	echo "$f $u $(per_packet "$t0" "$t1" "$p0" "$p1") $(per_packet "$t1" "$t2" "$p1" "$p2")"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

FA=() FB=() UA=() UB=() CFA=() CFB=() CUA=() CUB=()
for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2)); then
		read -r fa ua cfa cua <<<"$(one "$A")"
		read -r fb ub cfb cub <<<"$(one "$B")"
	else
		read -r fb ub cfb cub <<<"$(one "$B")"
		read -r fa ua cfa cua <<<"$(one "$A")"
	fi
	FA+=("$fa") FB+=("$fb") UA+=("$ua") UB+=("$ub") CFA+=("$cfa") CFB+=("$cfb") CUA+=("$cua") CUB+=("$cub")
	printf 'round %d: FTP A %7s B %7s MB/s (CPU A %5s B %5s us/packet)   UDP 1200 B: A %7s B %7s datagrams/s (CPU A %5s B %5s us/packet)\n' \
		"$r" "$fa" "$fb" "$cfa" "$cfb" "$ua" "$ub" "$cua" "$cub"
done
m() { printf '%s\n' "$@" | median; }
printf 'median (%d rounds, %d MiB FTP, offloads %s): FTP A %s B %s MB/s, CPU A %s B %s us/packet; UDP A %s B %s datagrams/s, CPU A %s B %s us/packet\n' \
	"$ROUNDS" "$MIB" "$OFFLOADS" "$(m "${FA[@]}")" "$(m "${FB[@]}")" "$(m "${CFA[@]}")" "$(m "${CFB[@]}")" \
	"$(m "${UA[@]}")" "$(m "${UB[@]}")" "$(m "${CUA[@]}")" "$(m "${CUB[@]}")"
NATALG=$A
natalg_rules_off >/dev/null
