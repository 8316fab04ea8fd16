#!/usr/bin/env bash
# demo.sh - the router pair of testdata/ha (keepalived + conntrackd + natalg on two routers,
# the shipped configuration with its paths rewritten) in network namespaces, and a failover:
# a passive-mode FTP download runs through router A; router A dies (its daemons SIGKILLed, its
# links down); router B takes over and the download completes intact. The same as
# cmd/natalg/ha_e2e_test.go, much shorter (one download, no fail back). About 15 s.
#
# Usage: sudo testdata/ha/demo.sh      NATALG=PATH uses that binary instead of building one
LIB_NAME=demo-ha
# shellcheck source=../e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
need keepalived keepalived
need conntrackd conntrackd
need tc iproute2
HA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# lib.sh's namespaces are the client (NS_IN), the server (NS_OUT) and router A (NS_R)
NS_B="$PREFIX-rb"
NS_SW="$PREFIX-sw"
RUN_BASE=/run/$PREFIX-ha # keepalived runs notify scripts only from directories only root can write
ha_cleanup() {
	local rc=$?
	for ns in "$NS_B" "$NS_SW"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	for p in $(ip netns pids "$NS_R" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	ip netns del "$NS_B" 2>/dev/null
	ip netns del "$NS_SW" 2>/dev/null
	rm -rf "$RUN_BASE"
	(exit $rc)
	cleanup
}
trap ha_cleanup EXIT
hr() { printf '\n=== %s\n' "$*"; }
since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f", t1 - t0 }'; }

natalg_build
for ns in "$NS_SW" "$NS_IN" "$NS_OUT" "$NS_R" "$NS_B"; do ip netns add "$ns"; nsx "$ns" ip link set lo up; done
for br in br-in br-out; do
	nsx "$NS_SW" ip link add "$br" type bridge mcast_snooping 0
	nsx "$NS_SW" ip link set "$br" up
done
plug() { # NS DEV SWITCHPORT BRIDGE
	ip link add "$2" netns "$1" type veth peer name "$3" netns "$NS_SW"
	nsx "$NS_SW" ip link set "$3" master "$4" up
	nsx "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null
}
plug "$NS_IN" eth0 cli br-in
plug "$NS_OUT" eth0 srv br-out
plug "$NS_R" lan0 a-lan br-in
plug "$NS_R" wan0 a-wan br-out
plug "$NS_B" lan0 b-lan br-in
plug "$NS_B" wan0 b-wan br-out
ip link add sync0 netns "$NS_R" type veth peer name sync0 netns "$NS_B"
nsx "$NS_IN" ip addr add "$IN_HOST/16" dev eth0
nsx "$NS_IN" ip link set eth0 up
nsx "$NS_IN" ip route add default via 198.18.0.1
nsx "$NS_OUT" ip addr add "$OUT_HOST/16" dev eth0
nsx "$NS_OUT" ip link set eth0 up
# 8 MiB at 16 Mbit/s: about 4 s, long enough to fail over in the middle
nsx "$NS_OUT" tc qdisc add dev eth0 root tbf rate 16mbit burst 32kb latency 100ms

# router NAME NS LAN WAN SYNC: its configuration from testdata/ha, its boot, its daemons
router() {
	local name=$1 ns=$2 etc=$RUN_BASE/$1/etc run=$RUN_BASE/$1/run f
	mkdir -p "$etc" "$run"
	chmod 755 "$RUN_BASE" "$RUN_BASE/$name"
	for f in keepalived.conf natalg.conf sysctl.conf ha-filter.nft notify.sh router-setup.sh; do
		sed -e "s|/etc/natalg-ha|$etc|g" -e "s|/run/natalg-ha|$run|g" -e "s|/usr/local/bin/natalg|$NATALG|g" "$HA_DIR/$f" >"$etc/$f"
	done
	sed -e "s|/etc/natalg-ha|$etc|g" -e "s|/run/natalg-ha|$run|g" "$HA_DIR/conntrackd-$name.conf" >"$etc/conntrackd.conf"
	chmod 755 "$etc/notify.sh" "$etc/router-setup.sh"
	nsx "$ns" ip addr add "$3/16" dev lan0
	nsx "$ns" ip addr add "$4/16" dev wan0
	nsx "$ns" ip addr add "$5/30" dev sync0
	for f in lan0 wan0 sync0; do nsx "$ns" ip link set "$f" up; done
	nsx "$ns" "$etc/router-setup.sh" "$etc" "$NATALG" >/dev/null
	nsx "$ns" conntrackd -C "$etc/conntrackd.conf" >"$WORK/conntrackd-$name.log" 2>&1 &
	PIDS+=($!)
	nsx "$ns" "$NATALG" run --config "$etc/natalg.conf" >"$WORK/natalg-$name.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 100); do grep -q msg=ready "$WORK/natalg-$name.log" && break; sleep 0.1; done
	nsx "$ns" keepalived --vrrp --dont-fork --log-console --config-id "natalg-$name" -f "$etc/keepalived.conf" \
		--pid "$run/keepalived.pid" --vrrp_pid "$run/keepalived-vrrp.pid" >"$WORK/keepalived-$name.log" 2>&1 &
	PIDS+=($!)
}
wait_master() { # NAME
	for _ in $(seq 1 100); do grep -q 'MASTER: done' "$RUN_BASE/$1/run/notify.log" 2>/dev/null && return 0; sleep 0.1; done
	die "router $1 did not become master"
}

hr "router A (master) and router B (backup): keepalived, conntrackd, natalg run --config testdata/ha/natalg.conf"
router a "$NS_R" 198.18.0.11 198.19.0.11 198.19.254.1
wait_master a
router b "$NS_B" 198.18.0.12 198.19.0.12 198.19.254.2
log "pair up"

start_vsftpd "$NS_OUT"
random_file "$FTPD_ROOT/pub/demo.bin" 8
want=$(sha256sum <"$FTPD_ROOT/pub/demo.bin" | cut -d' ' -f1)
hr "a passive-mode download of 8 MiB from the outside server, through the pair"
t0=$(date +%s.%N)
nsx "$NS_IN" curl -sS --max-time 60 --disable-epsv -o "$WORK/got.bin" "ftp://$OUT_HOST/pub/demo.bin" &
CURL=$!
sleep 1.5
log "natalg on router A: $(nsx "$NS_R" "$NATALG" flows --control "$RUN_BASE/a/run/natalg.sock" | grep ':21 ' | head -1)"
hr "router A dies: natalg, keepalived and conntrackd SIGKILLed, its links down"
for p in $(ip netns pids "$NS_R"); do kill -KILL "$p" 2>/dev/null; done
for f in lan0 wan0 sync0; do nsx "$NS_R" ip link set "$f" down; done
tkill=$(date +%s.%N)
wait_master b
log "router B is master, its notify script done $(since "$tkill") s after the kill:"
sed 's/^/    /' "$RUN_BASE/b/run/notify.log" | grep MASTER | cut -c1-160
log "natalg on router B: $(nsx "$NS_B" "$NATALG" flows --control "$RUN_BASE/b/run/natalg.sock" | grep ':21 ' | head -1)"
wait "$CURL" || die "the download failed"
got=$(sha256sum <"$WORK/got.bin" | cut -d' ' -f1)
[[ $got == "$want" ]] || die "the download arrived corrupted"
hr "the download completed intact across the failover (sha256 $got) in $(since "$t0") s"
