#!/usr/bin/env bash
# record.sh - record FTP sessions traversing the Linux kernel's own NAT + FTP
# helper (nf_conntrack_ftp / nf_nat_ftp) inside throwaway network namespaces.
#
# Usage: sudo testdata/record.sh [OUTDIR] [CASE-REGEX]
#   OUTDIR      default: testdata/kernel (relative to the repo root)
#   CASE-REGEX  optional extended regex; only cases whose name matches run
#
# Topology (all addresses inside 198.18.0.0/15 or IPv6 documentation/ULA space;
# nothing leaves the namespaces):
#
#   [client ns] c-eth <--veth--> r-in [router ns] r-out <--veth--> s-eth [server ns]
#        "inside" 198.18.0.0/16               "outside" 198.19.0.0/16
#
# The "server" namespace is always the outside host and has no route to the
# inside prefix; the "client" namespace is always the inside host (default
# route via the router).  For snat cases the FTP client runs inside and vsftpd
# outside; for dnat cases vsftpd runs inside and the FTP client outside.
#
# The router captures TCP with tcpdump per interface and direction:
#   inside-in.pcap  outside-in.pcap   (-Q in)  -> merged into in.pcap
#   inside-out.pcap outside-out.pcap  (-Q out) -> merged into golden.pcap
# in.pcap is what reached the router; golden.pcap is what the kernel sent.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
OUTDIR=${1:-$REPO_ROOT/testdata/kernel}
FILTER=${2:-}

die() { echo "record.sh: error: $*" >&2; exit 1; }
log() { echo "record.sh: [$(date +%T)] $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, iptables, tcpdump)"

need() { # need CMD DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 || die "command '$1' not found; install Debian package '$2'"
}
need ip iproute2
need iptables iptables
need ip6tables iptables
need tcpdump tcpdump
need curl curl
need vsftpd vsftpd
need mergecap wireshark-common
need capinfos wireshark-common
need ethtool ethtool
need conntrack conntrack
need ss iproute2
need timeout coreutils
need sha256sum coreutils

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

PREFIX="natalg-rec-$$"
NS_C="$PREFIX-client"
NS_R="$PREFIX-router"
NS_S="$PREFIX-server"
WORK=$(mktemp -d /tmp/natalg-rec.XXXXXX)
chmod 755 "$WORK"
PIDS=()

cleanup() {
	local rc=$?
	set +e
	local p
	for p in "${PIDS[@]}"; do
		kill -INT "$p" 2>/dev/null
	done
	sleep 0.3
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PIDS=()
	for ns in "$NS_C" "$NS_R" "$NS_S"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- case table --------------------------------------------------------------
# name|family|kind|mode|client|server|public|inside-host|expect-rewrite
#   inside-host: the inside address whose ASCII form the helper replaces
#   with PUBLIC (snat: the client; dnat: the server).
#   expect-rewrite: which control message text should carry a rewritten address
#   ("-" when the kernel has nothing to rewrite for that mode/kind).
CASES=(
	"snat-port|4|snat|port|198.18.0.2|198.19.0.2|198.19.100.100|198.18.0.2|PORT"
	"snat-eprt|4|snat|eprt|198.18.123.234|198.19.0.2|198.19.0.9|198.18.123.234|EPRT"
	"snat-pasv|4|snat|pasv|198.18.0.2|198.19.0.2|198.19.100.100|198.18.0.2|-"
	"snat-epsv|4|snat|epsv|198.18.123.234|198.19.0.2|198.19.0.9|198.18.123.234|-"
	"dnat-port|4|dnat|port|198.19.0.2|198.18.123.234|198.19.0.9|198.18.123.234|-"
	"dnat-eprt|4|dnat|eprt|198.19.0.2|198.18.0.2|198.19.100.100|198.18.0.2|-"
	"dnat-pasv|4|dnat|pasv|198.19.0.2|198.18.0.2|198.19.100.100|198.18.0.2|227"
	"dnat-epsv|4|dnat|epsv|198.19.0.2|198.18.123.234|198.19.0.9|198.18.123.234|-"
	# extra variants so that PORT (snat) and 227 (dnat) are each recorded both
	# growing and shrinking
	"snat-port-shrink|4|snat|port|198.18.123.234|198.19.0.2|198.19.0.9|198.18.123.234|PORT"
	"dnat-pasv-shrink|4|dnat|pasv|198.19.0.2|198.18.123.234|198.19.0.9|198.18.123.234|227"
	"snat-eprt-grow|4|snat|eprt|198.18.0.2|198.19.0.2|198.19.100.100|198.18.0.2|EPRT"
	# IPv6 (NAT66) snat cases
	"nat66-epsv|6|snat|epsv|fd00:18::2|2001:db8:19::2|2001:db8:19::100|fd00:18::2|-"
	"nat66-eprt|6|snat|eprt|fd00:18::2|2001:db8:19::2|2001:db8:19::100|fd00:18::2|EPRT"
)

# --- deterministic payloads --------------------------------------------------
mk_payloads() {
	# ~20 KB download, ~12 KB upload, both deterministic text
	# (no "| head -c": SIGPIPE on seq would trip pipefail)
	seq -f 'natalg kernel-ftp golden download line %05g abcdefghijklmnopqrstuvwxyz' 1 400 >"$WORK/download.bin"
	truncate -s 20480 "$WORK/download.bin"
	seq -f 'natalg kernel-ftp golden upload line %05g 0123456789' 1 400 >"$WORK/upload.bin"
	truncate -s 12288 "$WORK/upload.bin"
}

# --- topology ----------------------------------------------------------------
offload_off() { # ns ifname
	nsx "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null
	local on
	on=$(nsx "$1" ethtool -k "$2" | grep -E '^(rx-checksumming|tx-checksumming|tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload): on' || true)
	[[ -z $on ]] || die "offloads still on for $2 in $1: $on"
}

setup_topology() { # family client server public kind
	local fam=$1 client=$2 server=$3 public=$4 kind=$5
	local in_host out_host
	if [[ $kind == snat ]]; then in_host=$client; out_host=$server; else in_host=$server; out_host=$client; fi

	ip netns add "$NS_C"
	ip netns add "$NS_R"
	ip netns add "$NS_S"
	ip link add c-eth netns "$NS_C" type veth peer name r-in netns "$NS_R"
	ip link add s-eth netns "$NS_S" type veth peer name r-out netns "$NS_R"

	local ns
	for ns in "$NS_C" "$NS_R" "$NS_S"; do
		nsx "$ns" ip link set lo up
		if [[ $fam == 4 ]]; then
			nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
			nsx "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
		else
			nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0
			nsx "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
			nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0
			nsx "$ns" sysctl -qw net.ipv6.conf.default.accept_ra=0
		fi
	done
	offload_off "$NS_C" c-eth
	offload_off "$NS_R" r-in
	offload_off "$NS_R" r-out
	offload_off "$NS_S" s-eth

	if [[ $fam == 4 ]]; then
		nsx "$NS_C" ip addr add "$in_host/16" dev c-eth
		nsx "$NS_R" ip addr add 198.18.0.1/16 dev r-in
		nsx "$NS_R" ip addr add 198.19.0.1/16 dev r-out
		nsx "$NS_R" ip addr add "$public/32" dev r-out
		nsx "$NS_S" ip addr add "$out_host/16" dev s-eth
	else
		nsx "$NS_C" ip -6 addr add "$in_host/64" dev c-eth nodad
		nsx "$NS_R" ip -6 addr add fd00:18::1/64 dev r-in nodad
		nsx "$NS_R" ip -6 addr add 2001:db8:19::1/64 dev r-out nodad
		nsx "$NS_R" ip -6 addr add "$public/128" dev r-out nodad
		nsx "$NS_S" ip -6 addr add "$out_host/64" dev s-eth nodad
	fi
	for ns in "$NS_C" "$NS_R" "$NS_S"; do
		local ifs
		case $ns in
		"$NS_C") ifs="c-eth" ;;
		"$NS_R") ifs="r-in r-out" ;;
		"$NS_S") ifs="s-eth" ;;
		esac
		for i in $ifs; do nsx "$ns" ip link set "$i" up; done
	done
	if [[ $fam == 4 ]]; then
		nsx "$NS_C" ip route add default via 198.18.0.1
		nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1
		# the outside host only has its connected 198.19.0.0/16 route
	else
		nsx "$NS_C" ip -6 route add default via fd00:18::1
		nsx "$NS_R" sysctl -qw net.ipv6.conf.all.forwarding=1
	fi

	# NAT + explicit FTP helper assignment on the router
	local ipt=iptables
	[[ $fam == 6 ]] && ipt=ip6tables
	nsx "$NS_R" "$ipt" -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp
	if [[ $kind == snat ]]; then
		nsx "$NS_R" "$ipt" -t nat -A POSTROUTING -o r-out -s "$( [[ $fam == 4 ]] && echo 198.18.0.0/16 || echo fd00:18::/64)" \
			-j SNAT --to-source "$public"
	else
		nsx "$NS_R" "$ipt" -t nat -A PREROUTING -i r-out -d "$public" -p tcp --dport 21 \
			-j DNAT --to-destination "$(fmt_hostport "$fam" "$server" 21)"
		nsx "$NS_R" "$ipt" -t nat -A POSTROUTING -o r-out -s "$( [[ $fam == 4 ]] && echo 198.18.0.0/16 || echo fd00:18::/64)" \
			-j SNAT --to-source "$public"
	fi
}

teardown_topology() {
	local ns
	for ns in "$NS_C" "$NS_R" "$NS_S"; do
		ip netns del "$ns" 2>/dev/null || true
	done
}

fmt_hostport() { # fam host port
	if [[ $1 == 6 ]]; then echo "[$2]:$3"; else echo "$2:$3"; fi
}
fmt_urlhost() { # fam host
	if [[ $1 == 6 ]]; then echo "[$2]"; else echo "$2"; fi
}

# --- vsftpd -------------------------------------------------------------------
start_vsftpd() { # ns fam dir
	local ns=$1 fam=$2 dir=$3
	mkdir -p "$dir/root/pub" "$dir/root/incoming"
	chmod 755 "$dir" "$dir/root" "$dir/root/pub"
	cp "$WORK/download.bin" "$dir/root/pub/file.bin"
	chmod 644 "$dir/root/pub/file.bin"
	chown ftp "$dir/root/incoming"
	chmod 755 "$dir/root/incoming"
	local listen=YES listen6=NO
	[[ $fam == 6 ]] && { listen=NO; listen6=YES; }
	cat >"$dir/vsftpd.conf" <<EOF
listen=$listen
listen_ipv6=$listen6
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root=$dir/root
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=NO
anon_other_write_enable=NO
anon_umask=022
connect_from_port_20=YES
port_promiscuous=NO
pasv_promiscuous=NO
pasv_enable=YES
port_enable=YES
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file=$dir/vsftpd.log
use_localtime=NO
ftpd_banner=natalg golden FTP
EOF
	chmod 600 "$dir/vsftpd.conf"
	ip netns exec "$ns" vsftpd "$dir/vsftpd.conf" >"$dir/vsftpd.out" 2>&1 &
	FTPD_PID=$!
	PIDS+=($FTPD_PID)
	local i
	for i in $(seq 1 50); do
		if nsx "$ns" ss -Hltn 'sport = :21' | grep -q .; then return 0; fi
		sleep 0.1
	done
	cat "$dir/vsftpd.out" >&2 || true
	die "vsftpd did not start listening in $ns"
}

# --- capture ------------------------------------------------------------------
CAP_PIDS=()
start_capture() { # dir
	local dir=$1 ifn dirn name
	CAP_PIDS=()
	for ifn in r-in r-out; do
		for dirn in in out; do
			case $ifn in r-in) name=inside ;; r-out) name=outside ;; esac
			ip netns exec "$NS_R" tcpdump -i "$ifn" -Q "$dirn" -s 0 -U -n -Z root \
				-w "$dir/$name-$dirn.pcap" tcp >"$dir/$name-$dirn.tcpdump.log" 2>&1 &
			CAP_PIDS+=($!)
			PIDS+=($!)
		done
	done
	local f ok i
	for i in $(seq 1 100); do
		ok=1
		for f in "$dir"/*.tcpdump.log; do
			grep -q "listening on" "$f" || ok=0
		done
		[[ $ok == 1 ]] && break
		sleep 0.1
	done
	[[ $ok == 1 ]] || { cat "$dir"/*.tcpdump.log >&2; die "tcpdump did not start"; }
	sleep 0.5
}

stop_capture() { # dir
	local dir=$1 p
	for p in "${CAP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${CAP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	# remove from global list
	local keep=() q
	for q in "${PIDS[@]}"; do
		local found=0
		for p in "${CAP_PIDS[@]}"; do [[ $p == "$q" ]] && found=1; done
		[[ $found == 0 ]] && keep+=("$q")
	done
	PIDS=("${keep[@]+"${keep[@]}"}")
	CAP_PIDS=()
	local f
	for f in "$dir"/*.tcpdump.log; do
		if grep -Eq '^[1-9][0-9]* packets dropped by kernel' "$f"; then
			cat "$f" >&2
			die "tcpdump dropped packets ($f)"
		fi
	done
}

stop_pid() { # pid
	local p=$1 q keep=()
	kill -TERM "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for q in "${PIDS[@]}"; do [[ $q == "$p" ]] || keep+=("$q"); done
	PIDS=("${keep[@]+"${keep[@]}"}")
}

# --- one case -----------------------------------------------------------------
pcount() { capinfos -Mc "$1" | awk -F': *' '/Number of packets/ {print $2}'; }

# Extract the control-channel lines that carry addresses/ports.
ctl_lines() { # pcap
	tcpdump -n -A -r "$1" 'tcp port 21' 2>/dev/null |
		grep -aoE '(PORT [0-9,]+|EPRT \|[0-9]\|[^|]*\|[0-9]+\||227 [^()]*\([0-9,]+\)|229 [^()]*\(\|\|\|[0-9]+\|\))' |
		awk '!seen[$0]++' || true
}

# Full, zero-padded IPv6 text ("2001:0db8:...:0100"): what nf_nat_ftp writes
# into EPRT (it formats with %pI6, not %pI6c).
expand6() {
	local a=$1 l r out=() g i n
	if [[ $a == *::* ]]; then l=${a%%::*}; r=${a#*::}; else l=$a; r=; fi
	local -a L=() R=()
	[[ -n $l ]] && IFS=: read -ra L <<<"$l"
	[[ -n $r ]] && IFS=: read -ra R <<<"$r"
	n=$((8 - ${#L[@]} - ${#R[@]}))
	for g in "${L[@]+"${L[@]}"}"; do out+=("$g"); done
	for ((i = 0; i < n; i++)); do out+=(0); done
	for g in "${R[@]+"${R[@]}"}"; do out+=("$g"); done
	local s=
	for g in "${out[@]}"; do s+=$(printf '%04x:' "$((16#$g))"); done
	echo "${s%:}"
}

# Number of identical timestamps shared by two capture files: for such
# packets the merged order would be ambiguous.
cross_ties() { # a.pcap b.pcap
	comm -12 <(tcpdump -tt -n -r "$1" 2>/dev/null | awk '{print $1}' | sort -u) \
		<(tcpdump -tt -n -r "$2" 2>/dev/null | awk '{print $1}' | sort -u) | wc -l
}

SUMMARY=()
MISMATCH=()
run_case() { # spec
	local try
	for try in 1 2 3 4 5; do
		record_case "$1"
		[[ $TIES == 0 ]] && return 0
		log "$CASE_NAME: $TIES cross-interface timestamp tie(s) in merge; re-recording (try $try)"
	done
	die "$CASE_NAME: could not record without cross-interface timestamp ties"
}

record_case() { # spec
	local spec=$1
	local name fam kind mode client server public inhost expect
	IFS='|' read -r name fam kind mode client server public inhost expect <<<"$spec"
	CASE_NAME=$name
	log "=== case $name: $kind $mode client=$client server=$server public=$public"

	local cdir="$OUTDIR/$name"
	rm -rf "$cdir"
	mkdir -p "$cdir"
	local tmp="$WORK/$name"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	chmod 755 "$tmp"

	setup_topology "$fam" "$client" "$server" "$public" "$kind"

	local ns_ftpd ns_cli
	if [[ $kind == snat ]]; then ns_ftpd=$NS_S; ns_cli=$NS_C; else ns_ftpd=$NS_C; ns_cli=$NS_S; fi
	start_vsftpd "$ns_ftpd" "$fam" "$tmp/ftpd"

	# address the client dials: snat -> the real server; dnat -> PUBLIC
	local target
	if [[ $kind == snat ]]; then target=$server; else target=$public; fi
	local url="ftp://$(fmt_urlhost "$fam" "$target")"

	local mflags=()
	case $mode in
	port) mflags=(-P - --disable-eprt) ;;
	eprt) mflags=(-P -) ;;
	pasv) mflags=(--disable-epsv) ;;
	epsv) mflags=() ;;
	esac

	# conntrack expectation events on the router (evidence of the helper)
	ip netns exec "$NS_R" timeout 120 conntrack -E expect >"$tmp/expect-events.log" 2>/dev/null &
	local ev_pid=$!
	PIDS+=($ev_pid)

	start_capture "$cdir"
	log "$name: topology up, capturing"

	local rc=0
	nsx "$ns_cli" curl -sS --max-time 30 "${mflags[@]}" -o "$tmp/got.bin" "$url/pub/file.bin" || rc=$?
	[[ $rc == 0 ]] || die "$name: download curl exit $rc"
	nsx "$ns_cli" curl -sS --max-time 30 "${mflags[@]}" -T "$WORK/upload.bin" "$url/incoming/up.bin" || rc=$?
	[[ $rc == 0 ]] || die "$name: upload curl exit $rc"
	sleep 1

	stop_capture "$cdir"
	log "$name: transfers done, capture stopped"
	nsx "$NS_R" conntrack -L -f "$( [[ $fam == 4 ]] && echo ipv4 || echo ipv6)" -o extended \
		>"$tmp/conntrack-list.log" 2>/dev/null || true
	stop_pid "$ev_pid"
	stop_pid "$FTPD_PID"

	# verify transfers
	local want got
	want=$(sha256sum <"$WORK/download.bin" | cut -d' ' -f1)
	got=$(sha256sum <"$tmp/got.bin" | cut -d' ' -f1)
	[[ $want == "$got" ]] || die "$name: downloaded file checksum mismatch"
	[[ -f $tmp/ftpd/root/incoming/up.bin ]] || die "$name: uploaded file missing on server"
	want=$(sha256sum <"$WORK/upload.bin" | cut -d' ' -f1)
	got=$(sha256sum <"$tmp/ftpd/root/incoming/up.bin" | cut -d' ' -f1)
	[[ $want == "$got" ]] || die "$name: uploaded file checksum mismatch"

	teardown_topology

	# merge
	mergecap -F pcap -w "$cdir/in.pcap" "$cdir/inside-in.pcap" "$cdir/outside-in.pcap"
	mergecap -F pcap -w "$cdir/golden.pcap" "$cdir/inside-out.pcap" "$cdir/outside-out.pcap"
	rm -f "$cdir"/*.tcpdump.log
	TIES=$(( $(cross_ties "$cdir/inside-in.pcap" "$cdir/outside-in.pcap") + \
		$(cross_ties "$cdir/inside-out.pcap" "$cdir/outside-out.pcap") ))
	[[ $TIES == 0 ]] || return 0

	# helper evidence kept next to the captures
	{
		echo "# conntrack -E expect (router netns, during the session)"
		cat "$tmp/expect-events.log"
		echo "# conntrack -L -o extended (router netns, after the session)"
		cat "$tmp/conntrack-list.log"
	} >"$cdir/conntrack.log"

	# args
	local args="--inside $( [[ $fam == 4 ]] && echo 198.18.0.0/16 || echo fd00:18::/64) --public $public"
	if [[ $kind == dnat ]]; then
		args+=" --forward tcp:21=$(fmt_hostport "$fam" "$server" 21)"
	fi
	echo "$args" >"$cdir/args"

	# checksums: tcpdump -vv marks bad ones "incorrect"
	local f bad good n
	for f in "$cdir"/*.pcap; do
		bad=$(tcpdump -n -vv -r "$f" 2>/dev/null | grep -Ec 'incorrect|bad cksum' || true)
		good=$(tcpdump -n -vv -r "$f" 2>/dev/null | grep -Ec 'cksum 0x[0-9a-f]+ \(correct\)' || true)
		n=$(pcount "$f")
		[[ $bad == 0 ]] || die "$name: $bad packets with incorrect checksum in $(basename "$f")"
		[[ $good == "$n" ]] || die "$name: only $good of $n TCP checksums verified correct in $(basename "$f")"
	done

	# packet counts
	local nin ngold
	nin=$(pcount "$cdir/in.pcap")
	ngold=$(pcount "$cdir/golden.pcap")

	# rewrite evidence
	local in_ctl gold_ctl
	in_ctl=$(ctl_lines "$cdir/in.pcap")
	gold_ctl=$(ctl_lines "$cdir/golden.pcap")
	{
		echo "--- in.pcap control lines:"; echo "$in_ctl"
		echo "--- golden.pcap control lines:"; echo "$gold_ctl"
	} >&2

	local rewrite="none"
	local itext ptext delta=0
	if [[ $fam == 4 ]]; then
		case $mode in
		port | pasv) itext=${inhost//./,}; ptext=${public//./,} ;;
		*) itext=$inhost; ptext=$public ;;
		esac
	else
		itext=$inhost; ptext=$(expand6 "$public")
	fi
	if [[ $expect != - ]]; then
		grep -qF "$itext" <<<"$in_ctl" || die "$name: in.pcap lacks '$itext' in $expect text"
		grep -qF "$ptext" <<<"$gold_ctl" || die "$name: golden.pcap lacks '$ptext' in $expect text"
		if grep -qF "$itext" <<<"$gold_ctl"; then die "$name: golden.pcap still carries '$itext'"; fi
		delta=$(( ${#ptext} - ${#itext} ))
		if ((delta > 0)); then rewrite="grows(+$delta)"; elif ((delta < 0)); then rewrite="shrinks($delta)"; else rewrite="same-length"; fi
	fi
	# length of PUBLIC vs inside host in the text form of this mode, i.e. what
	# would happen if there were anything to rewrite
	local d=$(( ${#ptext} - ${#itext} )) sizechk
	if ((d > 0)); then sizechk="grows (+$d)"; elif ((d < 0)); then sizechk="shrinks ($d)"; else sizechk="same"; fi
	[[ $expect == - ]] && rewrite="none"

	local line="| $name | $kind | ${mode^^} | $client | $server | $public | $inhost | $sizechk | ${expect/-/none} | $rewrite | $nin | $ngold |"
	SUMMARY+=("$line")
	echo "$name: kind=$kind mode=$mode client=$client server=$server public=$public rewrite=$rewrite in=$nin golden=$ngold" >&2
	if [[ $nin != "$ngold" ]]; then
		log "WARNING: $name: in.pcap has $nin packets, golden.pcap has $ngold"
		MISMATCH+=("$name ($nin in, $ngold golden)")
	fi
}

mk_payloads
ran=0
for spec in "${CASES[@]}"; do
	name=${spec%%|*}
	if [[ -n $FILTER ]] && ! [[ $name =~ $FILTER ]]; then continue; fi
	run_case "$spec"
	ran=$((ran + 1))
done
((ran > 0)) || die "no case matched '$FILTER'"

# CASES.md (only rewritten when all cases ran, otherwise printed)
table() {
	cat <<'EOF'
# Kernel NAT + FTP helper captures

Recorded by `testdata/record.sh` (Linux nf_conntrack_ftp / nf_nat_ftp, helper
assigned explicitly with `-t raw ... -j CT --helper ftp`). Each case directory
holds `in.pcap` (every TCP packet that reached the router, both interfaces,
arrival order), `golden.pcap` (every TCP packet the router sent), the four
per-interface/direction captures, `args` (natalg flags) and `conntrack.log`.

Client and server run in separate network namespaces; "client" is the FTP
client, "server" runs vsftpd. "inside host" is the inside address the kernel
replaces with PUBLIC in the control text. "PUBLIC vs inside text" is the
length change of the address text in this mode's format (comma form for
PORT/227, dotted for EPRT, full zero-padded form for IPv6 EPRT since the
kernel writes `%pI6`) - the chosen grows/shrinks direction. "kernel rewrote"
names the message whose address the kernel replaced (checked: in.pcap carries
the inside address, golden.pcap carries PUBLIC and not the inside address);
"none" means the mode/kind has no address the kernel needs to change (EPSV
never carries one; 227 of an outside server and PORT/EPRT of an outside
client pass unchanged). "rewrite" is the observed length change.

Transfers per case: one `curl` download of `/pub/file.bin` (20480 bytes) then
one `curl -T` upload to `/incoming/up.bin` (12288 bytes): two control sessions
and two data connections per capture.

| case | kind | mode | client | server | public | inside host | PUBLIC vs inside text | kernel rewrote | rewrite | in pkts | golden pkts |
|---|---|---|---|---|---|---|---|---|---|---|---|
EOF
	printf '%s\n' "${SUMMARY[@]}"
	echo
	if ((${#MISMATCH[@]} == 0)); then
		echo "Packet counts of in.pcap and golden.pcap are equal for every case (the"
		echo "router forwarded every TCP packet 1:1)."
	else
		echo "Packet count MISMATCH between in.pcap and golden.pcap: ${MISMATCH[*]}."
	fi
	echo
	cat <<'EOF'
No two packets in the two files merged into in.pcap (or into golden.pcap)
share a timestamp, so the merged order is unambiguous (the script re-records
a case otherwise). All TCP checksums in all captures were verified correct
(`tcpdump -vv`); offloads (tso, gso, gro, tx, rx) were off on every veth end.
EOF
}
if [[ -z $FILTER ]]; then
	table >"$OUTDIR/CASES.md"
	log "wrote $OUTDIR/CASES.md"
	printf '%s\n' "${SUMMARY[@]}" >&2
else
	table
fi
log "done: $ran case(s)"
