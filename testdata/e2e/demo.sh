#!/usr/bin/env bash
# demo.sh - natalg as a live router: network namespaces for an inside host, the
# router and an outside host (testdata/e2e/lib.sh), vsftpd, and `natalg run`
# on NFQUEUE in the router. Two FTP sessions go through it:
#
#   1. SNAT, active mode: a client inside downloads from vsftpd outside with
#      PORT. The client stops after PORT is answered, before RETR, so
#      `natalg flows` shows the control flow and its pending expectation.
#   2. DNAT, passive mode: a client outside downloads from vsftpd inside,
#      behind the public address's port 21, with PASV (a 227 reply).
#
# Then it prints the address-carrying control lines as captured on the
# router's inside interface and on its outside interface (before and after
# natalg), and natalg's counters. Everything is removed at the end.
#
# Usage: sudo testdata/e2e/demo.sh      NATALG=PATH uses that binary instead of building one
LIB_NAME=demo
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY=/usr/bin/python3
[[ -x $PY ]] || die "$PY not found; install Debian package python3"

hr() { printf '\n=== %s\n' "$*"; }

natalg_build
topology_up off
hr "router: natalg rules (iptables, in the router namespace)"
natalg_rules_on
natalg_start
log "natalg run is ready (log: $WORK/natalg.log)"

# the router's control channel, both interfaces. --immediate-mode: without
# it libpcap's TPACKET_V3 ring hands packets over a block at a time, after
# up to a second, and what is still in the ring when tcpdump is stopped is
# lost (a session of the last second would be missing from the capture).
CAP_PIDS=()
for ifn in r-in r-out; do
	ip netns exec "$NS_R" tcpdump -i "$ifn" --immediate-mode -U -n -s 0 -Z root -w "$WORK/$ifn.pcap" 'tcp port 21' >"$WORK/$ifn.tcpdump.log" 2>&1 &
	CAP_PIDS+=($!)
	PIDS+=($!)
done
for i in $(seq 1 100); do
	grep -q "listening on" "$WORK/r-in.tcpdump.log" && grep -q "listening on" "$WORK/r-out.tcpdump.log" && break
	sleep 0.1
done
grep -q "listening on" "$WORK/r-out.tcpdump.log" || die "tcpdump did not start"

# 1. SNAT, PORT
start_vsftpd "$NS_OUT"
random_file "$FTPD_ROOT/pub/file.bin" 4
WANT=$(sha256sum <"$FTPD_ROOT/pub/file.bin" | cut -d' ' -f1)
hr "1. SNAT, active mode: inside $IN_HOST downloads from vsftpd at $OUT_HOST with PORT (Python ftplib)"
PAUSE=$WORK/pause
mkdir -p "$PAUSE"
ip netns exec "$NS_IN" "$PY" "$E2E_DIR/ftpclient.py" --host "$OUT_HOST" --mode active --op get \
	--remote pub/file.bin --local "$WORK/got1.bin" --pause-dir "$PAUSE" --pause-max 30 >"$WORK/client1.log" 2>&1 &
CL=$!
PIDS+=("$CL")
for i in $(seq 1 150); do
	[[ -e $PAUSE/ported ]] && break
	kill -0 "$CL" 2>/dev/null || break
	sleep 0.1
done
[[ -e $PAUSE/ported ]] || { cat "$WORK/client1.log" >&2; die "the client did not get its PORT answered"; }
echo "PORT sent and answered; the client waits before RETR. natalg flows (during the transfer):"
"$NATALG" flows --control "$NATALG_CONTROL" | sed 's/^/  /'
touch "$PAUSE/go"
rc=0
for i in $(seq 1 300); do kill -0 "$CL" 2>/dev/null || break; sleep 0.1; done
stop_pid "$CL" || rc=$?
[[ $rc == 0 ]] || { cat "$WORK/client1.log" >&2; die "active-mode download failed"; }
GOT=$(sha256sum <"$WORK/got1.bin" | cut -d' ' -f1)
[[ $GOT == "$WANT" ]] || die "downloaded file differs"
echo "download complete, SHA-256 matches ($(stat -c %s "$WORK/got1.bin") bytes)"

# 2. DNAT, PASV
start_vsftpd "$NS_IN"
random_file "$FTPD_ROOT/pub/file.bin" 4
WANT=$(sha256sum <"$FTPD_ROOT/pub/file.bin" | cut -d' ' -f1)
hr "2. DNAT, passive mode: outside $OUT_HOST downloads from vsftpd inside via $PUBLIC:21 with PASV (curl)"
nsx "$NS_OUT" curl -sS --max-time 60 --disable-epsv --no-ftp-skip-pasv-ip -o "$WORK/got2.bin" "ftp://$PUBLIC/pub/file.bin" ||
	die "passive-mode download failed"
GOT=$(sha256sum <"$WORK/got2.bin" | cut -d' ' -f1)
[[ $GOT == "$WANT" ]] || die "downloaded file differs"
echo "download complete, SHA-256 matches ($(stat -c %s "$WORK/got2.bin") bytes)"

sleep 0.3
for p in "${CAP_PIDS[@]}"; do stop_pid "$p" || true; done

# show_ctl_lines IFN: prints the address-carrying control lines (PORT, EPRT,
# 227, 229) captured on the router's interface IFN, each with its
# connection. The demo promises the PORT of session 1 and the 227 of session
# 2 on both sides: if the capture is missing or unreadable, or either line is
# not in it, this says why and the demo fails.
show_ctl_lines() {
	local ifn=$1 pcap=$WORK/$1.pcap text packets lines
	[[ -s $pcap ]] || die "no capture from $ifn: $pcap is missing or empty; tcpdump said: $(tail -n 5 "$WORK/$ifn.tcpdump.log" | tr '\n' ' ')"
	text=$(tcpdump -nn -A -r "$pcap" 2>"$WORK/$ifn.read.log") ||
		die "cannot read the capture of $ifn: $(tr '\n' ' ' <"$WORK/$ifn.read.log")"
	packets=$(grep -cE '^[0-9][0-9:.]+ IP6? ' <<<"$text" || true)
	lines=$(awk '
		/^[0-9][0-9:.]+ IP6? / { conn = $3 " > " $5; sub(/:$/, "", conn); next }
		match($0, /(PORT [0-9,]+|EPRT [!-~]+|227 [^\r]*|229 [^\r]*)/) { print conn "  " substr($0, RSTART, RLENGTH) }' <<<"$text")
	((packets > 0)) || die "tcpdump captured no packet to or from port 21 on $ifn ($(tail -n 2 "$WORK/$ifn.tcpdump.log" | tr '\n' ' ')): the FTP sessions did not cross the router there"
	[[ -n $lines ]] || die "the capture of $ifn holds $packets packets to or from port 21 but no PORT, EPRT, 227 or 229 line: natalg did not pass the control connections, or tcpdump missed them ($(tail -n 2 "$WORK/$ifn.tcpdump.log" | tr '\n' ' '))"
	grep -q ' PORT ' <<<"$lines" || die "the capture of $ifn ($packets packets) has no PORT line: session 1's PORT did not cross $ifn"
	grep -q ' 227 ' <<<"$lines" || die "the capture of $ifn ($packets packets) has no 227 line: session 2's PASV reply did not cross $ifn"
	sed 's/^/  /' <<<"$lines"
}
hr "control lines on the router's inside interface r-in (the inside host's view)"
show_ctl_lines r-in
hr "control lines on the router's outside interface r-out (the world's view, rewritten by natalg)"
show_ctl_lines r-out

hr "natalg counters"
nsx "$NS_R" curl -sS --max-time 5 http://127.0.0.1:9108/metrics |
	grep -E '^natalg_(alg_rewrites_total|alg_events_total|expectations_total|flows|packets_total)' | grep -v ' 0$' | sed 's/^/  /'
natalg_stop
natalg_rules_off >/dev/null
log "done"
