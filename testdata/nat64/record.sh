#!/usr/bin/env bash
# record.sh - re-record the NAT64 replay golden cases (testdata/nat64): one
# FTP session of an IPv6-only client with an IPv4-only vsftpd through
# natalg run --nat64-prefix --nat64-pool, per case, captured on natalg's TUN
# device, then replayed through natalg replay, whose output is the golden.
#
# Usage: sudo testdata/nat64/record.sh [OUTDIR] [CASE-REGEX]
#   OUTDIR      default: testdata/nat64
#   CASE-REGEX  extended regex; only the cases whose name matches are recorded
#   NATALG=bin  use this natalg binary (default: a fresh build)
#
#   [client ns] i-eth <--veth--> r-in [router ns] r-out <--veth--> o-eth [server ns]
#    fd00:64::2/64         fd00:64::1/64 198.18.64.1/24          198.18.64.2/24 vsftpd
#                          TUN nat64: 2001:db8:64::/96, 198.19.64.0/24
# (a network-specific prefix: the well-known 64:ff9b::/96 may not embed the
# non-global 198.18.64.2, RFC 6052 §3.1, and natalg refuses it)
#
# Per case (a fresh natalg each time, so the capture starts with the
# engine's first packet, as a replay does):
#   in.pcap      tcpdump -i nat64 (LINKTYPE_RAW, no link header): both
#                directions mixed, what the kernel routed into the device
#                (natalg's input) and what natalg wrote back (its output,
#                translated). Replaying it, natalg translates its input again
#                and passes its earlier output unchanged (not to the prefix
#                or the pool).
#   golden.pcap  natalg replay --nat64-prefix ... --nat64-pool ... in.pcap
#   args         the replay's flags
#   replay.txt   natalg replay's summary
# Cases: nat64-eprt (curl -6 -P -: EPRT |2|, rewritten to PORT),
# nat64-epsv (curl -6: EPSV, sent to the server as PASV, RFC 6384 §6).
# cmd/internal/pcapreplay's TestNAT64Golden replays each in.pcap and wants
# golden.pcap byte for byte.
LIB_NAME=nat64-record
# shellcheck source=../e2e/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../e2e/lib.sh"

OUTDIR=${1:-$REPO_ROOT/testdata/nat64}
FILTER=${2:-}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

PREFIX64=2001:db8:64::/96
POOL=198.19.64.0/24
CLIENT=fd00:64::2
SERVER=198.18.64.2
SERVER6=2001:db8:64::c612:4002
ARGS="--nat64-prefix $PREFIX64 --nat64-pool $POOL"

nat64_topology_up() {
	local ns d
	for ns in "$NS_IN" "$NS_R" "$NS_OUT"; do
		ip netns add "$ns"
		nsx "$ns" ip link set lo up
	done
	ip link add i-eth netns "$NS_IN" type veth peer name r-in netns "$NS_R"
	ip link add o-eth netns "$NS_OUT" type veth peer name r-out netns "$NS_R"
	for d in "$NS_IN:i-eth" "$NS_R:r-in" "$NS_R:r-out" "$NS_OUT:o-eth"; do
		nsx "${d%%:*}" ethtool -K "${d#*:}" tso off gso off gro off tx off rx off >/dev/null
	done
	nsx "$NS_IN" ip -6 addr add "$CLIENT/64" dev i-eth nodad
	nsx "$NS_R" ip -6 addr add fd00:64::1/64 dev r-in nodad
	nsx "$NS_R" ip addr add 198.18.64.1/24 dev r-out
	nsx "$NS_OUT" ip addr add "$SERVER/24" dev o-eth
	for d in "$NS_IN:i-eth" "$NS_R:r-in" "$NS_R:r-out" "$NS_OUT:o-eth"; do
		nsx "${d%%:*}" ip link set "${d#*:}" up
	done
	nsx "$NS_IN" ip -6 route add default via fd00:64::1
	nsx "$NS_OUT" ip route add "$POOL" via 198.18.64.1
	nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1
	nsx "$NS_R" sysctl -qw net.ipv6.conf.all.forwarding=1
}

# record_case NAME CURL-FLAGS... (background processes run under ip netns
# exec directly, not through nsx: a function would run in a subshell, whose
# PID stop_pid would signal instead of the process's)
record_case() {
	local name=$1 dir=$OUTDIR/$1 i
	shift
	[[ -z $FILTER || $name =~ $FILTER ]] || return 0
	log "case $name"
	mkdir -p "$dir"
	# shellcheck disable=SC2086
	ip netns exec "$NS_R" "$NATALG" run $ARGS --metrics "" --control "" >"$WORK/$name-natalg.log" 2>&1 &
	local npid=$!
	PIDS+=("$npid")
	for i in $(seq 1 100); do
		grep -q 'msg=ready' "$WORK/$name-natalg.log" && break
		kill -0 "$npid" 2>/dev/null || break
		sleep 0.1
	done
	grep -q 'msg=ready' "$WORK/$name-natalg.log" || { cat "$WORK/$name-natalg.log" >&2; die "natalg run did not become ready"; }
	# the golden test needs every packet (lost ones are counted below, and
	# refused): in immediate mode libpcap's ring has one frame of the snap
	# length per packet, so a snap length that fits the device's MTU (1500,
	# 1520 once translated to IPv6) and a 32 MiB buffer hold 8000 packets;
	# -s 0 and the default 2 MiB lost packets
	ip netns exec "$NS_R" tcpdump -i nat64 --immediate-mode -U -B 32768 -n -s 4096 -Z root -w "$WORK/$name.pcap" >"$WORK/$name-tcpdump.log" 2>&1 &
	local tpid=$!
	PIDS+=("$tpid")
	for i in $(seq 1 100); do
		grep -q 'listening on' "$WORK/$name-tcpdump.log" && break
		sleep 0.05
	done
	rm -f "$WORK/got"
	nsx "$NS_IN" timeout 40 curl -6 -sS -g --connect-timeout 10 --max-time 30 "$@" \
		-o "$WORK/got" "ftp://[$SERVER6]/pub/small.bin" || die "$name: curl failed"
	[[ $(sha256sum <"$WORK/got") == $(sha256sum <"$FTPD_ROOT/pub/small.bin") ]] || die "$name: download differs"
	sleep 0.5 # the last FIN/ACKs
	stop_pid "$tpid" || true
	stop_pid "$npid" || { cat "$WORK/$name-natalg.log" >&2; die "$name: natalg run did not stop cleanly"; }
	grep -q '^0 packets dropped by kernel' "$WORK/$name-tcpdump.log" || {
		cat "$WORK/$name-tcpdump.log" >&2
		die "$name: tcpdump lost packets: record again on a quieter machine"
	}
	cp "$WORK/$name.pcap" "$dir/in.pcap"
	echo "$ARGS" >"$dir/args"
	# shellcheck disable=SC2086
	"$NATALG" replay $ARGS "$dir/in.pcap" "$dir/golden.pcap" >"$dir/replay.txt"
	log "$name: tcpdump: $(grep -h 'captured\|received by\|dropped' "$WORK/$name-tcpdump.log" | tr '\n' ' ')"
	log "$name: natalg: $(grep -h 'nat64 stopped' "$WORK/$name-natalg.log")"
	log "$name: replay: $(head -1 "$dir/replay.txt")"
}

natalg_build
nat64_topology_up
start_vsftpd "$NS_OUT"
# 48 KiB: the captures stay small
head -c 49152 /dev/urandom >"$FTPD_ROOT/pub/small.bin"
chmod 644 "$FTPD_ROOT/pub/small.bin"
record_case nat64-eprt -P -
record_case nat64-epsv
log "done: $OUTDIR"
