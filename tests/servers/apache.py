"""Apache httpd with mod_dav_fs on 127.0.0.1: the WebDAV server most NAS boxes run.

``start_apache()`` writes its own ``httpd.conf`` into a fresh temp dir (nothing
under /etc/apache2 is read: every module is loaded by absolute path), creates a
``htpasswd`` file for one user (password through stdin, never argv), and runs
``apache2 -f CONF -DFOREGROUND`` in its own process group on a free port.  As
root, Apache serves as ``www-data`` (``User``/``Group``): the DAV tree and the
lock database belong to that user.  The tree is ``<tmp>/www/dav`` at URL path
``/dav``; basic auth guards it.  ``DavDepthInfinity`` stays off (Apache's
default, what a NAS has) unless asked for.  Every request is logged to
``<tmp>/access.log``, which ``counts()`` reads (BufferedLogs is off: a request
is in the log once it was answered).  On exit the server is stopped and the temp
dir removed (kept if CLOUDGW_KEEP_APACHE_DIR is set).

Debian packages: ``apache2`` and ``apache2-utils`` (scripts/install-test-servers.sh).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterator

from tests.servers import DavServer, free_port, wait_for_port

APACHE = "/usr/sbin/apache2"
HTPASSWD = "/usr/bin/htpasswd"
MODULES = "/usr/lib/apache2/modules"
USER = "cloudgw"
RUN_AS = "www-data"

_CONF = """\
ServerRoot "{d}"
DefaultRuntimeDir "{d}/run"
PidFile "{d}/run/httpd.pid"
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
{user}
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule authn_core_module {m}/mod_authn_core.so
LoadModule auth_basic_module {m}/mod_auth_basic.so
LoadModule authn_file_module {m}/mod_authn_file.so
LoadModule authz_user_module {m}/mod_authz_user.so
LoadModule dav_module {m}/mod_dav.so
LoadModule dav_fs_module {m}/mod_dav_fs.so
StartServers 1
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
Timeout 60
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
LimitRequestBody 0
ErrorLog "{d}/error.log"
LogLevel warn
LogFormat "%m %>s %U" methods
CustomLog "{d}/access.log" methods
DAVLockDB "{d}/lock/DAVLock"
DocumentRoot "{d}/www"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{d}/www/dav">
    Dav On
    DavDepthInfinity {infinity}
    AuthType Basic
    AuthName "cloudgw test"
    AuthBasicProvider file
    AuthUserFile "{d}/htpasswd"
    Require valid-user
</Directory>
"""


def _counts(log: Path) -> dict[str, int]:
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(Counter(line.split(" ", 1)[0] for line in lines if line))


@contextlib.contextmanager
def start_apache(*, depth_infinity: bool = False) -> Iterator[DavServer]:
    """Run Apache + mod_dav_fs on a free 127.0.0.1 port; yield how to reach it."""
    for program in (APACHE, HTPASSWD):
        if not os.path.exists(program):
            raise RuntimeError(f"{program} is missing: apt-get install apache2 apache2-utils"
                               " (scripts/install-test-servers.sh)")
    d = Path(tempfile.mkdtemp(prefix="cloudgw-apache-"))
    proc: subprocess.Popen | None = None
    try:
        d.chmod(0o755)  # the server's user must reach the tree
        for sub in ("run", "lock", "www/dav"):
            (d / sub).mkdir(parents=True)
        user_line = ""
        if os.geteuid() == 0:  # Apache will not serve as root: its children run as www-data
            pw = pwd.getpwnam(RUN_AS)
            for sub in ("lock", "www/dav"):
                os.chown(d / sub, pw.pw_uid, pw.pw_gid)
            user_line = f"User {RUN_AS}\nGroup {RUN_AS}"
        password = secrets.token_urlsafe(12)
        subprocess.run([HTPASSWD, "-i", "-c", str(d / "htpasswd"), USER], input=password, text=True, check=True,
                       capture_output=True)
        (d / "htpasswd").chmod(0o644)
        port = free_port()
        conf = d / "httpd.conf"
        conf.write_text(_CONF.format(d=d, port=port, user=user_line, m=MODULES,
                                     infinity="On" if depth_infinity else "Off"))
        with open(d / "stderr.log", "wb") as err:
            proc = subprocess.Popen([APACHE, "-f", str(conf), "-DFOREGROUND"], stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=subprocess.STDOUT, cwd=d, start_new_session=True,
                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"})
        try:
            wait_for_port(port, lambda: proc.poll() is None, "apache2")
        except RuntimeError as exc:
            logs = "".join(p.read_text()[-2000:] for p in (d / "stderr.log", d / "error.log") if p.exists())
            raise RuntimeError(f"{exc}: {logs}") from None
        yield DavServer("apache", port, "/dav", d / "www" / "dav", USER, password,
                        lambda: _counts(d / "access.log"), depth_infinity=depth_infinity)
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if not os.environ.get("CLOUDGW_KEEP_APACHE_DIR"):
            shutil.rmtree(d, ignore_errors=True)
