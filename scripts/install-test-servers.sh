#!/bin/sh
# Install the Debian test servers: what tests/servers/swift.py (start_swift)
# needs, OpenStack Swift with its s3api middleware, and what
# tests/servers/apache.py (start_apache) needs, Apache with mod_dav_fs and
# htpasswd (`apache2 apache2-utils`; its own config file, no site of
# /etc/apache2 is used). Idempotent; starts no services.
#
# Two packages suffice: `python3-swift` (all of Swift's code: the servers,
# s3api, tempauth, the ring builder) and `memcached` (tempauth refuses to work
# without the memcache middleware, which wants a server). start_swift runs
# the servers through swift.common.wsgi.run_wsgi and builds the rings with
# swift.common.ring.RingBuilder itself, under /usr/bin/python3, with its own
# swift.conf; so neither `swift` (swift-ring-builder, /etc/swift, and rsyslog
# as a dependency) nor swift-proxy/-account/-container/-object (/usr/bin
# wrappers, init scripts, uwsgi) are needed.
#
# tests/servers/samba.py (start_samba) needs `samba` (smbd, pdbedit) and
# `smbclient`; it runs a private smbd in the foreground with its own smb.conf.
#
# tests/mount/test_xattrs.py counts the extended-attribute calls of `ls -l` with `strace`.
set -eu

PACKAGES="python3-swift memcached apache2 apache2-utils samba smbclient systemd strace"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-test-servers: already installed: $PACKAGES"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# Keep package maintainer scripts from starting daemons (rsyslog, swift-*):
# a policy-rc.d that denies every action, only for the duration of the install.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
cleanup() {
    if [ -n "$created_policy" ]; then
        $SUDO rm -f /usr/sbin/policy-rc.d
    fi
}
trap cleanup EXIT INT TERM

# Daemons these packages (or their dependencies) ship; the ones this run
# installs are disabled afterwards, so the install enables no boot service
# (a service that was already there, e.g. a NAS's own smbd, is left alone).
# Debian's samba ships smbd, nmbd and samba-ad-dc (the last one masked).
SERVICES="memcached apache2 apache-htcacheclean smbd nmbd samba-ad-dc"
new_services=""
for svc in $SERVICES; do
    if [ ! -e "/lib/systemd/system/$svc.service" ] && [ ! -e "/etc/init.d/$svc" ]; then
        new_services="$new_services $svc"
    fi
done

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are missing or the install fails.
if ! $SUDO apt-get install -y -q --no-install-recommends $missing; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi
for svc in $new_services; do
    if command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --quiet "$svc.service" 2>/dev/null || true
    fi
    if command -v update-rc.d >/dev/null 2>&1 && [ -e "/etc/init.d/$svc" ]; then
        $SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
done
echo "install-test-servers: installed:$missing (boot services disabled:${new_services:- none})"
