# lib.sh - shared by bench-live.sh and demo.sh (sourced, bash): the
# three-namespace router topology of cmd/natalg/e2e_test.go, vsftpd, the
# kernel's NAT and natalg's daemon. Needs root.
#
#   [inside ns] i-eth <--veth--> r-in [router ns] r-out <--veth--> o-eth [outside ns]
#    198.18.0.2/16                                              198.19.0.2/16
#    fd00:18::2/64             public 198.19.100.100, 2001:db8:19::100  2001:db8:19::2/64
#
# The caller sets LIB_NAME (used in messages and names) before sourcing.

set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
LIB_NAME=${LIB_NAME:-natalg-e2e}

IN_HOST=198.18.0.2
OUT_HOST=198.19.0.2
PUBLIC=198.19.100.100
INSIDE=198.18.0.0/16
IN_HOST6=fd00:18::2
OUT_HOST6=2001:db8:19::2
PUBLIC6=2001:db8:19::100
INSIDE6=fd00:18::/64

die() { echo "$LIB_NAME: error: $*" >&2; exit 1; }
log() { echo "$LIB_NAME: [$(date +%T)] $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, iptables, NFQUEUE)"
need() { command -v "$1" >/dev/null 2>&1 || die "command '$1' not found; install Debian package '$2'"; }
need ip iproute2
need ss iproute2
need iptables iptables
need ethtool ethtool
need vsftpd vsftpd
need curl curl
need tcpdump tcpdump
need sha256sum coreutils
need timeout coreutils

PREFIX="natalg-e2e-$$"
NS_IN="$PREFIX-in"
NS_R="$PREFIX-rt"
NS_OUT="$PREFIX-out"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/$LIB_NAME.XXXXXX")
chmod 755 "$WORK"
PIDS=()

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
	local rc=$?
	set +e
	local p ns
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for ns in "$NS_IN" "$NS_R" "$NS_OUT"; do
		# anything left in our namespaces is ours
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID: SIGTERM, wait (bounded), SIGKILL; returns the exit status
stop_pid() {
	local p=$1 rc=0 i
	kill -TERM "$p" 2>/dev/null || true
	for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || rc=$?
	local keep=() q
	for q in "${PIDS[@]+"${PIDS[@]}"}"; do [[ $q == "$p" ]] || keep+=("$q"); done
	PIDS=("${keep[@]+"${keep[@]}"}")
	return $rc
}

# topology_up on|off: offloads (TSO/GSO/GRO and checksums) on every veth end
topology_up() {
	local offl=$1 ns
	for ns in "$NS_IN" "$NS_R" "$NS_OUT"; do
		ip netns add "$ns"
		nsx "$ns" ip link set lo up
	done
	ip link add i-eth netns "$NS_IN" type veth peer name r-in netns "$NS_R"
	ip link add o-eth netns "$NS_OUT" type veth peer name r-out netns "$NS_R"
	local d
	for d in "$NS_IN:i-eth" "$NS_R:r-in" "$NS_R:r-out" "$NS_OUT:o-eth"; do
		nsx "${d%%:*}" ethtool -K "${d#*:}" tso "$offl" gso "$offl" gro "$offl" tx "$offl" rx "$offl" >/dev/null
	done
	nsx "$NS_IN" ip addr add "$IN_HOST/16" dev i-eth
	nsx "$NS_IN" ip -6 addr add "$IN_HOST6/64" dev i-eth nodad
	nsx "$NS_R" ip addr add 198.18.0.1/16 dev r-in
	nsx "$NS_R" ip -6 addr add fd00:18::1/64 dev r-in nodad
	nsx "$NS_R" ip addr add 198.19.0.1/16 dev r-out
	nsx "$NS_R" ip addr add "$PUBLIC/32" dev r-out
	nsx "$NS_R" ip -6 addr add 2001:db8:19::1/64 dev r-out nodad
	nsx "$NS_R" ip -6 addr add "$PUBLIC6/128" dev r-out nodad
	nsx "$NS_OUT" ip addr add "$OUT_HOST/16" dev o-eth
	nsx "$NS_OUT" ip -6 addr add "$OUT_HOST6/64" dev o-eth nodad
	for d in "$NS_IN:i-eth" "$NS_R:r-in" "$NS_R:r-out" "$NS_OUT:o-eth"; do
		nsx "${d%%:*}" ip link set "${d#*:}" up
	done
	nsx "$NS_IN" ip route add default via 198.18.0.1
	nsx "$NS_IN" ip -6 route add default via fd00:18::1
	nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1
	nsx "$NS_R" sysctl -qw net.ipv6.conf.all.forwarding=1
	# the outside host keeps only its connected routes
}

# kernel_nat_on / kernel_nat_off: the reference NAT (SNAT, DNAT of port 21,
# the FTP helper assigned explicitly)
kernel_nat_rules() { # -A|-D
	local op=$1
	nsx "$NS_R" iptables -t raw "$op" PREROUTING -p tcp --dport 21 -j CT --helper ftp
	nsx "$NS_R" iptables -t nat "$op" POSTROUTING -o r-out -s "$INSIDE" -j SNAT --to-source "$PUBLIC"
	nsx "$NS_R" iptables -t nat "$op" PREROUTING -i r-out -d "$PUBLIC" -p tcp --dport 21 -j DNAT --to-destination "$IN_HOST:21"
	nsx "$NS_R" ip6tables -t raw "$op" PREROUTING -p tcp --dport 21 -j CT --helper ftp
	nsx "$NS_R" ip6tables -t nat "$op" POSTROUTING -o r-out -s "$INSIDE6" -j SNAT --to-source "$PUBLIC6"
}
kernel_nat_on() { kernel_nat_rules -A; }
kernel_nat_off() { kernel_nat_rules -D; flush_conntrack; }
flush_conntrack() {
	if command -v conntrack >/dev/null 2>&1; then
		nsx "$NS_R" conntrack -F >/dev/null 2>&1 || true
		nsx "$NS_R" conntrack -F expect >/dev/null 2>&1 || true
	fi
}

# natalg_build: sets NATALG (the binary): $NATALG if set, else a fresh build
natalg_build() {
	if [[ -n ${NATALG:-} ]]; then
		[[ -x $NATALG ]] || die "NATALG=$NATALG is not executable"
		return 0
	fi
	need go golang
	NATALG=$WORK/natalg
	(cd "$REPO_ROOT" && go build -o "$NATALG" ./cmd/natalg) || die "go build failed"
}

NATALG_RULES=(--inside-if r-in --outside-if r-out --queues 0-1)
natalg_rules_on() { nsx "$NS_R" "$NATALG" rules "${NATALG_RULES[@]}" --apply; }
natalg_rules_off() { nsx "$NS_R" "$NATALG" rules "${NATALG_RULES[@]}" --remove; flush_conntrack; }

# natalg_start [extra flags...]: the daemon in the router, waits for msg=ready
NATALG_PID=
NATALG_CONTROL=
natalg_start() {
	NATALG_CONTROL=$WORK/natalg.sock
	ip netns exec "$NS_R" "$NATALG" run --inside "$INSIDE" --inside "$INSIDE6" \
		--public "$PUBLIC" --public "$PUBLIC6" --forward "tcp:21=$IN_HOST:21" --queues 0-1 \
		--metrics 127.0.0.1:9108 --control "$NATALG_CONTROL" "$@" >"$WORK/natalg.log" 2>&1 &
	NATALG_PID=$!
	PIDS+=("$NATALG_PID")
	local i
	for i in $(seq 1 100); do
		grep -q 'msg=ready' "$WORK/natalg.log" && return 0
		kill -0 "$NATALG_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$WORK/natalg.log" >&2
	die "natalg run did not become ready"
}
natalg_stop() {
	local rc=0
	stop_pid "$NATALG_PID" || rc=$?
	[[ $rc == 0 ]] || log "natalg run exited with status $rc"
	NATALG_PID=
}

# start_vsftpd NS: anonymous vsftpd (IPv4) with pub/ and a writable incoming/;
# sets FTPD_PID and FTPD_ROOT. Files to serve go in $FTPD_ROOT/pub.
start_vsftpd() {
	local ns=$1 dir=$WORK/vsftpd-$1
	mkdir -p "$dir/root/pub" "$dir/root/incoming"
	chmod 755 "$dir" "$dir/root" "$dir/root/pub" "$dir/root/incoming"
	chown ftp "$dir/root/incoming"
	FTPD_ROOT=$dir/root
	cat >"$dir/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
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
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file=$dir/vsftpd.log
use_localtime=NO
ftpd_banner=natalg live FTP
EOF
	chmod 600 "$dir/vsftpd.conf"
	ip netns exec "$ns" vsftpd "$dir/vsftpd.conf" >"$dir/vsftpd.out" 2>&1 &
	FTPD_PID=$!
	PIDS+=("$FTPD_PID")
	local i
	for i in $(seq 1 50); do
		if nsx "$ns" ss -Hltn 'sport = :21' | grep -q .; then return 0; fi
		sleep 0.1
	done
	cat "$dir/vsftpd.out" >&2 || true
	die "vsftpd did not start listening in $ns"
}

# random_file PATH MIB: PATH gets MIB MiB from /dev/urandom
random_file() { head -c "$(($2 * 1048576))" /dev/urandom >"$1"; chmod 644 "$1"; }
