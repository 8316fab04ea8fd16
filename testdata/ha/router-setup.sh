#!/bin/sh
# /etc/natalg-ha/router-setup.sh: the part of a natalg router's boot that is not a daemon, the
# same on router A and router B. Run it once, before the daemons:
#
#   router-setup.sh [CONF_DIR [NATALG_BIN]]     (defaults /etc/natalg-ha, natalg on PATH)
#
# then start, in this order (systemd units or the like; the order matters only at boot):
#   conntrackd -C CONF_DIR/conntrackd.conf
#   natalg run --config CONF_DIR/natalg.conf
#   keepalived --vrrp --dont-fork --config-id natalg-a -f CONF_DIR/keepalived.conf   (natalg-b on B)
# keepalived last: a router must not become master before natalg's table is in its kernel.
set -eu
conf=${1:-/etc/natalg-ha}
natalg=${2:-natalg}

# forwarding, liberal TCP window tracking, no mid-stream pick-up (why: sysctl.conf)
sysctl -q -p "$conf/sysctl.conf"
# natalg's queue rules: FTP control connections to natalg (split datapath), the interface marks
"$natalg" rules --inside-if lan0 --outside-if wan0 --queues 0-1 --apply
# drop what conntrack cannot place until the synced entries are committed (ha-filter.nft)
nft -f "$conf/ha-filter.nft"
# the runtime directory of the configuration's sockets, pid and log files
mkdir -p /run/natalg-ha
