#!/usr/bin/env bash
# bench-live.sh - natalg run against the kernel's NAT + FTP helper
# (nf_nat_ftp) on one router topology of network namespaces
# (testdata/e2e/lib.sh), alternating, in both of natalg's datapaths:
#
#   kernel  iptables SNAT/DNAT and the kernel's FTP helper
#   split   natalg run (default --datapath split): FTP control through
#           natalg, everything else in the kernel (table inet natalg)
#   full    natalg run --datapath full: every packet through natalg
#
# Rows (each measured in every mode, every round; the order of the modes
# rotates each round):
#
#   ftp-offloads-on    a MIB MiB FTP download, veth offloads on (GSO)   MB/s
#   ftp-offloads-off   the same, offloads off (wire-sized packets)      MB/s
#   iperf3-tcp         iperf3 TCP, offloads off                         MB/s
#   iperf3-udp-1200    iperf3 UDP, 1200-byte datagrams, unlimited rate  packets/s received
#   iperf3-udp-64      iperf3 UDP, 64-byte datagrams, unlimited rate    packets/s received
#
# Prints every measurement, then per row the medians, the ratios
# split/kernel and full/kernel, the median of the rounds' own ratios
# ("paired") and in how many rounds the mode was at least as fast as the
# kernel ("ahead in").
#
# Usage: sudo testdata/e2e/bench-live.sh [ROUNDS] [MIB]   (default 3 rounds, 64 MiB)
#   NATALG=PATH      natalg binary (default: go build ./cmd/natalg)
#   SECS=N           seconds per iperf3 run (default 3)
#   SETTLE=N         seconds between switching the NAT on and measuring (default 2)
#   ROWS="..."       the rows to run (default: all five, in the order above)
#   MODE=epsv|pasv|eprt|port  curl's FTP mode (default epsv)
#   AFFINITY=N,M     the sender on CPU N, the receiver on CPU M: iperf3's
#                    client and server, vsftpd and curl (default 0,1 with
#                    two CPUs or more: the sender's CPU, where the router's
#                    forwarding runs too, is the same every run; AFFINITY=
#                    to let the scheduler choose)
#   MODES="..."      the modes, kernel first (default "kernel split full";
#                    "kernel split" gives split twice the rounds in the time)
#
# The client is inside (198.18.0.2), vsftpd and iperf3 -s outside
# (198.19.0.2): SNAT. Each download is checked by SHA-256. Between runs the
# NAT is switched: the kernel's rules in and out, or natalg's rules in and
# natalg run started, then stopped and "natalg rules --remove" (which
# removes its table too); the router's conntrack is flushed.
LIB_NAME=bench-live
if [[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${1:-3}
MIB=${2:-64}
SECS=${SECS:-3}
SETTLE=${SETTLE:-2}
if [[ -z ${AFFINITY+x} ]]; then
	AFFINITY=
	(($(nproc) >= 2)) && AFFINITY=0,1
fi
MODE=${MODE:-epsv}
ROWS=${ROWS:-ftp-offloads-on ftp-offloads-off iperf3-tcp iperf3-udp-1200 iperf3-udp-64}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $MIB =~ ^[1-9][0-9]*$ ]] || die "MIB must be a positive integer"
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "SECS must be a positive integer"
case $MODE in
epsv) MFLAGS=() ;;
pasv) MFLAGS=(--disable-epsv) ;;
eprt) MFLAGS=(-P -) ;;
port) MFLAGS=(-P - --disable-eprt) ;;
*) die "MODE must be epsv, pasv, eprt or port" ;;
esac
need iperf3 iperf3

natalg_build
topology_up off
start_vsftpd "$NS_OUT"
# vsftpd sends the downloads: its sessions (forked from the listener) run on
# the sender's CPU, as iperf3's client does
if [[ -n $AFFINITY ]]; then taskset -pc "${AFFINITY%%,*}" "$FTPD_PID" >/dev/null || die "taskset vsftpd"; fi
random_file "$FTPD_ROOT/pub/big.bin" "$MIB"
WANT=$(sha256sum <"$FTPD_ROOT/pub/big.bin" | cut -d' ' -f1)
nsx "$NS_OUT" iperf3 -s -D -B "$OUT_HOST" --logfile "$WORK/iperf3-server.log" || die "iperf3 -s failed"
for i in $(seq 1 50); do
	nsx "$NS_OUT" ss -Hltn "sport = :5201" | grep -q . && break
	sleep 0.1
done
log "$ROUNDS rounds, FTP $MODE $MIB MiB, iperf3 ${SECS} s; rows: $ROWS"

offloads() { # on|off: the veths' TSO/GSO/GRO and checksum offloads
	local d
	for d in "$NS_IN:i-eth" "$NS_R:r-in" "$NS_R:r-out" "$NS_OUT:o-eth"; do
		nsx "${d%%:*}" ethtool -K "${d#*:}" tso "$1" gso "$1" gro "$1" tx "$1" rx "$1" >/dev/null 2>&1 || die "ethtool ${d#*:} $1"
	done
}

nat_on() {
	case $1 in
	kernel) kernel_nat_on ;;
	split | full) natalg_rules_on >/dev/null; natalg_start --datapath "$1" ;;
	esac
}
nat_off() {
	case $1 in
	kernel) kernel_nat_off ;;
	split | full) natalg_stop; natalg_rules_off >/dev/null ;;
	esac
	drop_empty_tables
}
# drop_empty_tables: iptables-nft leaves a table's base chains registered
# after its last rule is deleted, and an empty base chain still costs every
# packet a call: each mode starts from a router with no xt table it does
# not use itself.
drop_empty_tables() {
	local fam t save
	for fam in ip ip6; do
		save=iptables-save
		[[ $fam == ip6 ]] && save=ip6tables-save
		for t in raw mangle nat filter; do
			nsx "$NS_R" nft list table "$fam" "$t" >/dev/null 2>&1 || continue
			if ! nsx "$NS_R" "$save" -t "$t" | grep -q '^-A'; then
				nsx "$NS_R" nft delete table "$fam" "$t" || die "nft delete table $fam $t"
			fi
		done
	done
}

# ftp LABEL: one download; prints MB/s (10^6 bytes per second)
ftp() {
	local got=$WORK/got.bin speed sum
	rm -f "$got"
	speed=$(nsx "$NS_IN" timeout 600 ${AFFINITY:+taskset -c "${AFFINITY#*,}"} curl -sS --max-time 590 --no-ftp-skip-pasv-ip "${MFLAGS[@]+"${MFLAGS[@]}"}" \
		-o "$got" -w '%{speed_download}' "ftp://$OUT_HOST/pub/big.bin") || die "$1: curl failed"
	sum=$(sha256sum <"$got" | cut -d' ' -f1)
	[[ $sum == "$WANT" ]] || die "$1: downloaded file differs (sha256 $sum, want $WANT)"
	rm -f "$got"
	awk -v s="$speed" 'BEGIN { printf "%.1f\n", s / 1e6 }'
}

# iperf LABEL ARGS...: one iperf3 run; TCP: MB/s received; UDP: packets/s received
iperf() {
	local label=$1 out
	shift
	out=$(nsx "$NS_IN" timeout $((SECS + 30)) iperf3 -c "$OUT_HOST" -t "$SECS" -J ${AFFINITY:+-A "$AFFINITY"} "$@") || die "$label: iperf3 failed: $(tail -c 300 <<<"$out")"
	python3 -c '
import json, sys
r = json.load(sys.stdin)
e = r["end"]
if "sum_received" in e and r["start"]["test_start"]["protocol"] == "TCP":
    print("%.1f" % (e["sum_received"]["bits_per_second"] / 8e6))
else:
    s = e["sum"]
    print("%.0f" % ((s["packets"] - s["lost_packets"]) / s["seconds"]))
' <<<"$out" || die "$label: iperf3 output"
}

measure() { # ROW MODE
	case $1 in
	ftp-*) ftp "$1/$2" ;;
	iperf3-tcp) iperf "$1/$2" ;;
	iperf3-udp-1200) iperf "$1/$2" -u -b 0 -l 1200 ;;
	iperf3-udp-64) iperf "$1/$2" -u -b 0 -l 64 ;;
	*) die "unknown row $1" ;;
	esac
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.10g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

read -r -a MODES <<<"${MODES:-kernel split full}"
[[ ${MODES[0]:-} == kernel ]] || die "MODES must start with kernel"
for m in "${MODES[@]}"; do [[ $m == kernel || $m == split || $m == full ]] || die "MODES: $m is not kernel, split or full"; done
NM=${#MODES[@]}
declare -A RES
SUMMARY=()
for row in $ROWS; do
	case $row in
	ftp-offloads-on) offloads on ;;
	*) offloads off ;;
	esac
	for r in $(seq 1 "$ROUNDS"); do
		line="$row round $r:"
		for ((i = 0; i < NM; i++)); do
			m=${MODES[$(((r - 1 + i) % NM))]}
			nat_on "$m"
			sleep "$SETTLE" # natalg run's start (its flow table's memory) off the clock
			v=$(measure "$row" "$m")
			nat_off "$m"
			RES[$row/$m]+="$v "
			line+=" $m $v"
		done
		echo "$line"
	done
	vals() { tr ' ' '\n' <<<"${RES[$row/$1]:-}" | { grep . || true; }; }
	med() { vals "$1" | median; }
	ratio() { awk -v n="$1" -v k="$2" 'BEGIN { if (n != "" && k > 0) printf "%.3f", n / k; else print "n/a" }'; }
	# paired: the median of the rounds' own ratios (each round measures the
	# modes back to back, so a machine that slows down for a while slows
	# both sides of a pair), and in how many rounds the mode was at least
	# as fast as the kernel
	paired() {
		local m ahead
		m=$(paste -d' ' <(vals "$1") <(vals kernel) | awk '$2 > 0 { printf "%.4f\n", $1 / $2 }' | median)
		[[ -n $m ]] || return 0
		ahead=$(paste -d' ' <(vals "$1") <(vals kernel) | awk '$2 > 0 { n++; if ($1 >= $2) a++ } END { printf "%d/%d", a, n }')
		printf '%s, ahead in %s' "$m" "$ahead"
	}
	mk=$(med kernel) ms=$(med split) mf=$(med full)
	unit="MB/s"
	[[ $row == iperf3-udp-* ]] && unit="packets/s"
	s=$(printf '%-17s kernel %10s  split %10s  full %10s %-9s  split/kernel %s (paired %s)  full/kernel %s (paired %s)' \
		"$row" "$mk" "${ms:--}" "${mf:--}" "$unit" "$(ratio "$ms" "$mk")" "$(paired split)" "$(ratio "$mf" "$mk")" "$(paired full)")
	echo "median: $s"
	SUMMARY+=("$s")
done
echo
echo "medians of $ROUNDS rounds (FTP $MODE $MIB MiB, iperf3 $SECS s${AFFINITY:+ on CPUs $AFFINITY}, $(nproc) CPUs, $(uname -r)):"
printf '  %s\n' "${SUMMARY[@]}"
