#!/bin/sh
# deps.sh - install what the end-to-end suite (cmd/natalg/e2e_test.go) and
# the live scripts need beyond the Makefile's APT_PKGS (as root, Debian 12).
#
# The second FTP server is ProFTPD. Debian's FTP servers (vsftpd,
# proftpd-core, pure-ftpd) all provide and conflict with the virtual package
# ftp-server, so proftpd-core cannot be installed next to vsftpd: its package
# is downloaded with apt-get and unpacked under $NATALG_E2E_TOOLS (default
# /opt/natalg-e2e), its libraries are installed as ordinary packages. The
# suite runs $NATALG_E2E_TOOLS/proftpd/usr/sbin/proftpd with a config of its
# own (no file under /etc is used).
set -eu
DEST=${NATALG_E2E_TOOLS:-/opt/natalg-e2e}
PROFTPD=$DEST/proftpd/usr/sbin/proftpd
LIBS="libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libacl1 libcap2 libidn2-0 libpam0g libssl3"
PKGS="python3 $LIBS"

missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -x "$PROFTPD" ] && [ -z "$missing" ] && "$PROFTPD" -v >/dev/null 2>&1; then
	echo "deps.sh: all present ($PROFTPD)"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing:$missing ${PROFTPD} (run as root); the end-to-end suite will skip" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ -n "$missing" ]; then
	echo "deps.sh: installing$missing"
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! [ -x "$PROFTPD" ] || ! "$PROFTPD" -v >/dev/null 2>&1; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download -qq proftpd-core 2>&1 | grep -v unsandboxed || true)
	deb=$(ls "$tmp"/proftpd-core_*.deb)
	rm -rf "$DEST/proftpd"
	mkdir -p "$DEST/proftpd"
	dpkg-deb -x "$deb" "$DEST/proftpd"
	"$PROFTPD" -v
fi
