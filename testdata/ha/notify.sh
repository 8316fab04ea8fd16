#!/bin/sh
# /etc/natalg-ha/notify.sh: keepalived's notify script on router A and router B of a natalg pair.
#
#   notify.sh CONNTRACKD_CONF NATALG_SOCKET NATALG_BIN  INSTANCE NAME STATE PRIORITY
#
# keepalived.conf names the first three; keepalived appends the last four. It runs on every
# state change of the VRRP instance, after keepalived has added (MASTER) or removed (BACKUP,
# FAULT) the addresses. What it does follows conntrackd's primary-backup.sh, plus natalg:
#
# MASTER  1. conntrackd -c: commit the external cache (the connections synced from the old
#            master) into the kernel: from here on the kernel translates them, the masqueraded
#            flows, the forwards and the FTP data connections, with their marks and labels.
#         2. natalg rebuild: natalg run reads the kernel's table (a ctnetlink dump) and takes
#            over the FTP control connections it finds there (their public port and sequence
#            offsets are in the entry's mark and labels). Until it has, their segments are
#            dropped (natalg.conf: no-pickup) and retransmitted by TCP. Right after the commit:
#            every step before it lengthens the window.
#         3. conntrackd -f, -R, -B: flush the caches, refill the internal cache from the kernel
#            and send it all to the other router (which, once back, is the backup).
# BACKUP, FAULT
#         conntrackd -t: flush the kernel's table in PurgeTimeout seconds (entries this router
#            translated as master must not clash with the next commit), and conntrackd -n: ask
#            the master for its whole table.
#
# Everything is logged to notify.log next to natalg's socket.
set -u
ctd_conf=$1 natalg_sock=$2 natalg_bin=$3 state=$6
log=$(dirname "$natalg_sock")/notify.log

say() { echo "$(date -u +%H:%M:%S.%N | cut -c1-12) $state: $*" >>"$log"; }
run() {
	if out=$("$@" 2>&1); then
		say "ok: $* ${out:+($(echo "$out" | head -n 3 | tr '\n' ' '))}"
	else
		say "FAILED ($?): $* ($(echo "$out" | head -n 3 | tr '\n' ' '))"
	fi
}

case "$state" in
MASTER)
	run conntrackd -C "$ctd_conf" -c
	run "$natalg_bin" rebuild --control "$natalg_sock"
	run conntrackd -C "$ctd_conf" -f
	run conntrackd -C "$ctd_conf" -R
	run conntrackd -C "$ctd_conf" -B
	;;
BACKUP | FAULT)
	run conntrackd -C "$ctd_conf" -t
	run conntrackd -C "$ctd_conf" -n
	;;
*)
	say "nothing to do"
	;;
esac
say "done"
exit 0
