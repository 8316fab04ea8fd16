#!/usr/bin/env bash
# bench-live.sh - the same FTP download through natalg (NFQUEUE) and through
# the kernel's NAT + FTP helper (nf_nat_ftp), alternating, on one router
# topology of network namespaces (testdata/e2e/lib.sh). Prints every round,
# the median throughput of each and the ratio natalg/kernel.
#
# Usage: sudo testdata/e2e/bench-live.sh [ROUNDS] [MIB]     (default 3 rounds, 64 MiB)
#   NATALG=PATH        natalg binary (default: go build ./cmd/natalg)
#   OFFLOADS=on|off    TSO/GSO/GRO and checksum offloads on the veths (default on)
#   MODE=epsv|pasv|eprt|port  curl's FTP mode (default epsv)
#   NATALG_ARGS="..."  extra flags for natalg run (e.g. --gso=false)
#
# natalg run receives GSO packets whole by default (--gso). With
# NATALG_ARGS=--gso=false the kernel segments every GSO packet before
# queueing it, so natalg handles wire-sized packets while the kernel's NAT
# forwards the large ones.
#
# The client is inside (198.18.0.2), vsftpd outside (198.19.0.2): SNAT. Each
# download is checked by SHA-256. The order alternates every round (kernel
# first in odd rounds, natalg first in even ones). Between runs the NAT is
# switched by adding/removing rules, and the router's conntrack is flushed;
# natalg's daemon keeps running (idle while its rules are out).
LIB_NAME=bench-live
if [[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${1:-3}
MIB=${2:-64}
OFFLOADS=${OFFLOADS:-on}
MODE=${MODE:-epsv}
read -r -a EXTRA <<<"${NATALG_ARGS:-}"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $MIB =~ ^[1-9][0-9]*$ ]] || die "MIB must be a positive integer"
case $OFFLOADS in on | off) ;; *) die "OFFLOADS must be on or off" ;; esac
case $MODE in
epsv) MFLAGS=() ;;
pasv) MFLAGS=(--disable-epsv) ;;
eprt) MFLAGS=(-P -) ;;
port) MFLAGS=(-P - --disable-eprt) ;;
*) die "MODE must be epsv, pasv, eprt or port" ;;
esac

natalg_build
topology_up "$OFFLOADS"
start_vsftpd "$NS_OUT"
random_file "$FTPD_ROOT/pub/big.bin" "$MIB"
WANT=$(sha256sum <"$FTPD_ROOT/pub/big.bin" | cut -d' ' -f1)
natalg_start "${EXTRA[@]+"${EXTRA[@]}"}"
log "natalg $("$NATALG" run --help 2>&1 | head -0)ready; offloads $OFFLOADS, mode $MODE, $MIB MiB, $ROUNDS rounds"

# one LABEL: one download; prints MB/s (10^6 bytes per second)
one() {
	local label=$1 got=$WORK/got.bin speed sum
	rm -f "$got"
	speed=$(nsx "$NS_IN" timeout 600 curl -sS --max-time 590 --no-ftp-skip-pasv-ip "${MFLAGS[@]+"${MFLAGS[@]}"}" \
		-o "$got" -w '%{speed_download}' "ftp://$OUT_HOST/pub/big.bin") || die "$label: curl failed"
	sum=$(sha256sum <"$got" | cut -d' ' -f1)
	[[ $sum == "$WANT" ]] || die "$label: downloaded file differs (sha256 $sum, want $WANT)"
	rm -f "$got"
	awk -v s="$speed" 'BEGIN { printf "%.1f\n", s / 1e6 }'
}
run_kernel() { kernel_nat_on; one kernel; kernel_nat_off; }
run_natalg() { natalg_rules_on >/dev/null; one natalg; natalg_rules_off >/dev/null; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

K=() N=()
for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2)); then
		k=$(run_kernel); n=$(run_natalg)
	else
		n=$(run_natalg); k=$(run_kernel)
	fi
	K+=("$k"); N+=("$n")
	printf 'round %d: kernel %8s MB/s   natalg %8s MB/s\n' "$r" "$k" "$n"
done
mk=$(printf '%s\n' "${K[@]}" | median)
mn=$(printf '%s\n' "${N[@]}" | median)
ratio=$(awk -v n="$mn" -v k="$mk" 'BEGIN { if (k > 0) printf "%.3f", n / k; else print "n/a" }')
echo "median ($ROUNDS rounds, $MIB MiB, FTP $MODE, offloads $OFFLOADS): kernel $mk MB/s, natalg $mn MB/s, natalg/kernel $ratio"
# natalg's own view: packets by verdict, drops, kernel queue drops
metrics=$(nsx "$NS_R" curl -sS --max-time 5 http://127.0.0.1:9108/metrics 2>/dev/null |
	grep -E "^natalg_(packets_total|drops_total|nfqueue_dropped_total)" | grep -v " 0$" || true)
[[ -z $metrics ]] || { echo "natalg metrics:"; echo "$metrics" | sed 's/^/  /'; }
natalg_stop
