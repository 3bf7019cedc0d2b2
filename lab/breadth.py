"""More real servers for identification: Debian's daemons of the less common protocols.

Used by lab/capture-fixtures.py (fixtures for the matchers) and bench/identify_breadth.py
(portkit against nmap on unexpected ports). Each server runs in the foreground inside a
network namespace the caller made, with configuration generated under a state directory,
on the port the caller chooses. Nothing is started in the host's namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SERVERS", "Server", "add_test_interface", "installed", "start"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    """A daemon, what portkit should call it, and how to run it on a port."""

    name: str
    binary: str
    port: int  # its usual port
    transport: str
    probe: str  # the portkit probe whose answer is the fixture ("" to listen)
    service: str
    product: str
    version: str  # only where the server itself says it
    command: Callable[[Path, int], list[str]]
    user: str | None = None  # run as this user (it owns the state directory)
    owner: str | None = None  # the daemon drops to this user: it owns the state directory
    idle: float = 0.5  # seconds of silence that end its answer
    host: str = HOST  # where it answers (avahi ignores loopback: the test interface)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _ngircd(d: Path, port: int) -> list[str]:
    conf = _write(
        d / "ngircd.conf",
        f"[Global]\nName = irc.lab.test\nPorts = {port}\nListen = {HOST}\n"
        f"PidFile = {d / 'pid'}\nMotdPhrase = portkit lab\n"
        "[Options]\nDNS = no\nIdent = no\nPAM = no\n",
    )
    return ["/usr/sbin/ngircd", "-n", "-f", str(conf)]


def _inspircd(d: Path, port: int) -> list[str]:
    conf = _write(
        d / "inspircd.conf",
        '<server name="irc2.lab.test" description="portkit lab" network="lab">\n'
        '<admin name="lab" nick="lab" email="lab@lab.test">\n'
        f'<bind address="{HOST}" port="{port}" type="clients">\n'
        '<connect allow="*" timeout="60" localmax="10" globalmax="10">\n'
        f'<pid file="{d / "pid"}">\n<dns server="{HOST}" timeout="1">\n'
        f'<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" '
        f'target="{d / "log"}">\n',
    )
    return ["/usr/sbin/inspircd", "--nofork", "--config", str(conf)]


def _prosody(d: Path, port: int) -> list[str]:
    (d / "data").mkdir()
    conf = _write(
        d / "prosody.cfg.lua",
        f'pidfile = "{d / "pid"}"\ndaemonize = false\ndata_path = "{d / "data"}"\n'
        f'interfaces = {{ "{HOST}" }}\nc2s_ports = {{ {port} }}\ns2s_ports = {{ }}\n'
        f'log = {{ error = "{d / "error.log"}" }}\n'
        'modules_enabled = { "roster"; "saslauth"; "disco"; "ping" }\n'
        'authentication = "internal_hashed"\nVirtualHost "lab.test"\n',
    )
    return ["env", f"PROSODY_CONFIG={conf}", "prosody", "--config", str(conf)]


def _squid(d: Path, port: int) -> list[str]:
    conf = _write(
        d / "squid.conf",
        f"http_port {HOST}:{port}\npid_filename {d / 'pid'}\ncache_log {d / 'cache.log'}\n"
        "access_log none\ncache deny all\nhttp_access allow localhost\n"
        f"http_access deny all\ncoredump_dir {d}\n",
    )
    return ["/usr/sbin/squid", "-N", "-f", str(conf)]


def _tinyproxy(d: Path, port: int) -> list[str]:
    conf = _write(
        d / "tinyproxy.conf",
        f"Port {port}\nListen {HOST}\nTimeout 60\nMaxClients 10\nAllow {HOST}\n"
        f'PidFile "{d / "pid"}"\n',
    )
    return ["/usr/bin/tinyproxy", "-d", "-c", str(conf)]


def _cupsd(d: Path, port: int) -> list[str]:
    for sub in ("spool", "cache", "log", "run"):
        (d / sub).mkdir()
    conf = _write(
        d / "cupsd.conf",
        f"Listen {HOST}:{port}\nServerName lab\n<Location />\n  Order allow,deny\n"
        "  Allow all\n</Location>\n",
    )
    files = _write(
        d / "cups-files.conf",
        f"ServerRoot {d}\nRequestRoot {d / 'spool'}\nCacheDir {d / 'cache'}\n"
        f"StateDir {d / 'run'}\nTempDir {d / 'spool'}\nAccessLog {d / 'log/access_log'}\n"
        f"ErrorLog {d / 'log/error_log'}\nPageLog {d / 'log/page_log'}\n",
    )
    return ["/usr/sbin/cupsd", "-f", "-c", str(conf), "-s", str(files)]


def _rsync(d: Path, port: int) -> list[str]:
    conf = _write(
        d / "rsyncd.conf", f"pid file = {d / 'pid'}\n[pub]\npath = {d}\nread only = yes\n"
    )
    return ["/usr/bin/rsync", "--daemon", "--no-detach", f"--address={HOST}", f"--port={port}",
            f"--config={conf}"]  # fmt: skip


def _svnserve(d: Path, port: int) -> list[str]:
    return ["/usr/bin/svnserve", "-d", "--foreground", "--listen-host", HOST,
            "--listen-port", str(port), "-r", str(d)]  # fmt: skip


def _oidentd(d: Path, port: int) -> list[str]:
    return ["/usr/sbin/oidentd", "-i", "-a", HOST, "-p", str(port), "--foreground"]


def _epmd(d: Path, port: int) -> list[str]:
    return ["/usr/bin/epmd", "-address", HOST, "-port", str(port)]


def _beanstalkd(d: Path, port: int) -> list[str]:
    return ["/usr/bin/beanstalkd", "-l", HOST, "-p", str(port)]


def _xvnc(d: Path, port: int) -> list[str]:
    # X11 listens on 6000 + display; the display is chosen from the port.
    return ["/usr/bin/Xtigervnc", f":{port - 6000}", "-rfbport", str(port + 1000),
            "-SecurityTypes", "None", "-interface", HOST, "-listen", "tcp", "-ac", "-noreset"]  # fmt: skip


def _microsocks(d: Path, port: int) -> list[str]:
    return ["/usr/bin/microsocks", "-i", HOST, "-p", str(port)]


def _etcd(d: Path, port: int) -> list[str]:
    return ["/usr/bin/etcd", "--data-dir", str(d / "data"),
            "--listen-client-urls", f"http://{HOST}:{port}",
            "--advertise-client-urls", f"http://{HOST}:{port}",
            "--listen-peer-urls", f"http://{HOST}:{port + 1}"]  # fmt: skip


def _node_exporter(d: Path, port: int) -> list[str]:
    return ["/usr/bin/prometheus-node-exporter", f"--web.listen-address={HOST}:{port}"]


def _influxd(d: Path, port: int) -> list[str]:
    conf = _write(
        d / "influxdb.conf",
        f'reporting-disabled = true\nbind-address = "{HOST}:{port + 2}"\n'
        f'[meta]\n  dir = "{d / "meta"}"\n[data]\n  dir = "{d / "data"}"\n'
        f'  wal-dir = "{d / "wal"}"\n[http]\n  bind-address = "{HOST}:{port}"\n',
    )
    return ["/usr/bin/influxd", "-config", str(conf)]


def _tftpd(d: Path, port: int) -> list[str]:
    (d / "root").mkdir()
    return ["/usr/sbin/in.tftpd", "-L", "-a", f"{HOST}:{port}", "-s", str(d / "root")]


def _coturn(d: Path, port: int) -> list[str]:
    return ["/usr/bin/turnserver", "-n", f"--listening-ip={HOST}", f"--listening-port={port}",
            "--no-tls", "--no-dtls", f"--pidfile={d / 'pid'}", "--log-file=stdout",
            "--no-cli"]  # fmt: skip


def _coap(d: Path, port: int) -> list[str]:
    return ["/usr/bin/coap-server-notls", "-A", HOST, "-p", str(port)]


def _nmbd(d: Path, port: int) -> list[str]:
    dirs = {k: d / k for k in ("lock", "state", "cache", "private", "pid", "log")}
    for path in dirs.values():
        path.mkdir()
    # nmbd needs a non-loopback IPv4 interface (add_test_interface) and answers on 137 only.
    conf = _write(
        d / "smb.conf",
        "[global]\n netbios name = LABHOST\n workgroup = LABGROUP\n"
        f" lock directory = {dirs['lock']}\n state directory = {dirs['state']}\n"
        f" cache directory = {dirs['cache']}\n private dir = {dirs['private']}\n"
        f" pid directory = {dirs['pid']}\n log file = {dirs['log']}/log.%m\n",
    )
    return ["/usr/sbin/nmbd", "-F", "--no-process-group", "-s", str(conf)]


def _git_daemon(d: Path, port: int) -> list[str]:
    return ["git", "daemon", "--reuseaddr", f"--base-path={d}", "--export-all",
            "--informative-errors", f"--listen={HOST}", f"--port={port}"]  # fmt: skip


def _certificate(d: Path) -> tuple[Path, Path]:
    """A self-signed key and certificate under ``d``."""
    key, cert = d / "server.key", d / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=lab",
         "-days", "30", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def _openvpn(d: Path, port: int) -> list[str]:
    # A server for many clients, as deployed (--server): a point-to-point --tls-server
    # serves one peer, closes on the first stray bytes and is deaf for about a second
    # while it restarts. The tun device exists only inside the namespace.
    key, cert = _certificate(d)
    return ["/usr/sbin/openvpn", "--server", "10.251.0.0", "255.255.255.0",
            "--proto", "tcp-server", "--local", HOST, "--port", str(port),
            "--dev", "tun", "--topology", "subnet", "--ca", str(cert), "--cert", str(cert),
            "--key", str(key), "--dh", "none", "--verb", "1"]  # fmt: skip


def _freeradius(d: Path, port: int) -> list[str]:
    # Debian's configuration knows 127.0.0.1 as a client; -i/-p replace its listeners.
    return ["/usr/sbin/freeradius", "-f", "-d", "/etc/freeradius/3.0", "-l", "stdout",
            "-i", HOST, "-p", str(port)]  # fmt: skip


def _avahi(d: Path, port: int) -> list[str]:
    conf = _write(
        d / "avahi-daemon.conf",
        "[server]\nuse-ipv4=yes\nuse-ipv6=no\nenable-dbus=no\nallow-interfaces=pkbr0\n"
        "[publish]\npublish-addresses=yes\n",
    )
    return ["/usr/sbin/avahi-daemon", "--no-drop-root", "--no-chroot", "--no-rlimits",
            "-f", str(conf)]  # fmt: skip


def _charon(d: Path, port: int) -> list[str]:
    # strongSwan's IKE daemon with no connection configured: it answers every
    # IKE_SA_INIT with NO_PROPOSAL_CHOSEN. Its ports come from strongswan.conf.
    conf = _write(
        d / "strongswan.conf",
        "include /etc/strongswan.d/*.conf\n"
        f"charon {{\n  load_modular = yes\n  port = {port}\n  port_nat_t = {port + 1}\n"
        "  plugins {\n    include /etc/strongswan.d/charon/*.conf\n  }\n}\n",
    )
    return ["env", f"STRONGSWAN_CONF={conf}", "/usr/lib/ipsec/charon"]


def _fingerd(d: Path, port: int) -> list[str]:
    # in.fingerd is an inetd service (it runs finger(1) for the answer): socat accepts
    # and hands it the connection as stdin and stdout.
    return ["socat", f"TCP-LISTEN:{port},bind={HOST},reuseaddr,fork",
            "EXEC:/usr/sbin/in.fingerd,nofork"]  # fmt: skip


def _dtls(d: Path, port: int) -> list[str]:
    # OpenSSL's own DTLS server; it answers a ClientHello with a HelloVerifyRequest.
    key, cert = _certificate(d)
    return ["openssl", "s_server", "-dtls", "-accept", f"{HOST}:{port}", "-cert", str(cert),
            "-key", str(key), "-quiet"]  # fmt: skip


def _danted(d: Path, port: int) -> list[str]:
    # Dante answers SOCKS 4 and 5; every request is refused, so it connects nowhere.
    conf = _write(
        d / "danted.conf",
        f"logoutput: stderr\ninternal: {HOST} port = {port}\nexternal: {HOST}\n"
        "socksmethod: none\nclientmethod: none\nuser.unprivileged: nobody\n"
        f"client pass {{ from: {HOST}/8 to: 0.0.0.0/0 }}\n"
        "socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 }\n",
    )
    return ["/usr/sbin/danted", "-f", str(conf)]


def _lpd(d: Path, port: int) -> list[str]:
    # BSD lpd always detaches (and leaves the caller's process group); the shell stays
    # in the group, watches the pid lpd writes to its lock file, and passes on SIGTERM.
    # Debian's hosts.lpd lists no host, so lpd refuses every query, naming itself.
    script = (
        f"/usr/sbin/lpd -b {HOST} {port} || exit 1; sleep 0.5; "
        "pid=$(head -n 1 /var/spool/lpd/lpd.lock); trap 'kill $pid; exit 0' TERM; "
        'while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done'
    )
    return ["sh", "-c", script]


def _ejabberd(d: Path, port: int) -> list[str]:
    # Erlang would start epmd detached (out of our process group): it runs here in the
    # foreground beside ejabberd instead, on its usual port inside the namespace.
    for sub in ("spool", "logs"):
        (d / sub).mkdir()
    conf = _write(
        d / "ejabberd.yml",
        'hosts:\n  - "lab.test"\nloglevel: warning\nauth_method: internal\n'
        f'listen:\n  - port: {port}\n    ip: "{HOST}"\n    module: ejabberd_c2s\n'
        "modules:\n  mod_disco: {}\n",
    )
    # An empty ejabberdctl.cfg: Debian's would put its own ejabberd.yml back.
    ctl = _write(d / "ejabberdctl.cfg", "")
    script = (
        f"/usr/bin/epmd -address {HOST} & exec /usr/sbin/ejabberdctl --ctl-config {ctl} "
        f"--config {conf} "
        f"--spool {d / 'spool'} --logs {d / 'logs'} --node ejabberd@localhost foreground"
    )
    return ["sh", "-c", script]


def _rsyslog(d: Path, port: int) -> list[str]:
    # Syslog over RELP (imrelp), the one syslog transport that answers; plain syslog
    # over TCP on the next port, which never does (it stays open, unnamed).
    conf = _write(
        d / "rsyslog.conf",
        f'global(workDirectory="{d}")\nmodule(load="imrelp")\nmodule(load="imtcp")\n'
        f'input(type="imrelp" port="{port}" address="{HOST}")\n'
        f'input(type="imtcp" port="{port + 1}" address="{HOST}")\n'
        f'*.* action(type="omfile" file="{d / "messages"}")\n',
    )
    return ["/usr/sbin/rsyslogd", "-n", "-f", str(conf), "-i", str(d / "pid")]


def _leafnode(d: Path, port: int) -> list[str]:
    # Leafnode is an inetd service (one process per connection, as fingerd): socat accepts
    # and hands it the connection. It greets with its version (RFC 3977 section 5.1).
    # It insists on a fully qualified host name outside the reserved example domains: the
    # process gets a UTS namespace of its own with one (the host's name is not touched;
    # the namespace has no resolver, so the name is never looked up).
    conf = _write(d / "config", "server = 127.0.0.1\nexpire = 20\n")
    listen = f"TCP-LISTEN:{port},bind={HOST},reuseaddr,fork"
    return ["unshare", "--uts", "sh", "-c",
            f"hostname news.portkit-lab.net && exec socat {listen} "
            f"'EXEC:/usr/sbin/leafnode -F {conf},nofork'"]  # fmt: skip


def _varnish(d: Path, port: int) -> list[str]:
    # A cache in front of a backend that does not answer (the next port): every request
    # gets Varnish's own 503 page, with its Via header.
    return ["/usr/sbin/varnishd", "-F", "-j", "none", "-n", str(d / "work"),
            "-a", f"{HOST}:{port}", "-b", f"{HOST}:{port + 1}", "-s", "malloc,16m"]  # fmt: skip


def _dictd(d: Path, port: int) -> list[str]:
    # dictd serves at least one database: a one-word dictionary made with dictfmt. It
    # greets with its version (RFC 2229 section 3.1).
    subprocess.run(["dictfmt", "-j", "--utf8", "-s", "lab", str(d / "lab")],
                   input=b"hello\n  a greeting\n", check=True, capture_output=True)  # fmt: skip
    conf = _write(
        d / "dictd.conf",
        "global {\nlisten_to 127.0.0.1\n}\naccess {\nallow 127.0.0.1\n}\n"
        f'database lab {{\ndata "{d / "lab.dict"}"\nindex "{d / "lab.index"}"\n}}\n',
    )
    return ["/usr/sbin/dictd", "-d", "nodetach", "-p", str(port), "-c", str(conf),
            "--pid-file", str(d / "pid")]  # fmt: skip


def _rpcbind(d: Path, port: int) -> list[str]:
    # rpcbind listens on 111 only (TCP and UDP) and keeps its socket and state under /run:
    # a mount namespace of its own gives it a private /run.
    return ["unshare", "--mount", "sh", "-c",
            "mount -t tmpfs tmpfs /run && exec /usr/sbin/rpcbind -f -w"]  # fmt: skip


def _zookeeper(d: Path, port: int) -> list[str]:
    # Debian's defaults otherwise: only "srvr" among the four-letter words.
    conf = _write(
        d / "zoo.cfg",
        f"dataDir={d}\nclientPort={port}\nclientPortAddress={HOST}\nadmin.enableServer=false\n",
    )
    return ["java", "-cp", "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar",
            f"-Dzookeeper.log.dir={d}", "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(conf)]  # fmt: skip


SERVERS = (
    Server("squid", "/usr/sbin/squid", 3128, "tcp", "http-get", "http-proxy",
           "Squid http proxy", "5.7", _squid, owner="proxy"),
    Server("tinyproxy", "/usr/bin/tinyproxy", 3129, "tcp", "http-get", "http-proxy",
           "Tinyproxy", "1.11.1", _tinyproxy, owner="tinyproxy"),
    Server("cupsd", "/usr/sbin/cupsd", 631, "tcp", "http-get", "ipp", "CUPS", "2.4.2", _cupsd),
    Server("ngircd", "/usr/sbin/ngircd", 6667, "tcp", "irc-register", "irc", "ngIRCd",
           "26.1", _ngircd),
    Server("inspircd", "/usr/sbin/inspircd", 6668, "tcp", "", "irc", "", "", _inspircd,
           user="irc"),
    Server("inspircd-registered", "/usr/sbin/inspircd", 6669, "tcp", "irc-register", "irc",
           "InspIRCd", "3", _inspircd, user="irc", idle=2.5),
    Server("prosody", "/usr/bin/prosody", 5222, "tcp", "xmpp-stream", "xmpp-client", "", "",
           _prosody, user="prosody"),
    Server("rsync", "/usr/bin/rsync", 873, "tcp", "", "rsync", "", "", _rsync),
    Server("svnserve", "/usr/bin/svnserve", 3690, "tcp", "", "svn", "Subversion", "",
           _svnserve),
    Server("oidentd", "/usr/sbin/oidentd", 113, "tcp", "ident-query", "ident", "", "",
           _oidentd),
    Server("epmd", "/usr/bin/epmd", 4370, "tcp", "epmd-port-please", "epmd",
           "Erlang Port Mapper Daemon", "", _epmd),
    Server("beanstalkd", "/usr/bin/beanstalkd", 11300, "tcp", "beanstalkd-stats",
           "beanstalkd", "beanstalkd", "1.12", _beanstalkd),
    Server("x11", "/usr/bin/Xtigervnc", 6058, "tcp", "x11-setup", "X11", "X.Org", "21.1.6",
           _xvnc),
    Server("microsocks", "/usr/bin/microsocks", 1080, "tcp", "socks5-greeting", "socks5", "",
           "", _microsocks),
    Server("etcd", "/usr/bin/etcd", 2379, "tcp", "http-get-version", "etcd-client", "etcd",
           "3.4.23", _etcd),
    Server("node-exporter", "/usr/bin/prometheus-node-exporter", 9100, "tcp", "http-get",
           "http", "Prometheus Node Exporter", "", _node_exporter),
    # The same daemon's metrics: the follow-up that names its version.
    Server("node-exporter-metrics", "/usr/bin/prometheus-node-exporter", 9100, "tcp",
           "http-get-metrics", "http", "Prometheus Node Exporter", "1.5.0", _node_exporter),
    Server("influxdb", "/usr/bin/influxd", 8086, "tcp", "http-get", "http", "InfluxDB",
           "1.6.7~rc0", _influxd),
    Server("tftpd-hpa", "/usr/sbin/in.tftpd", 69, "udp", "tftp-read", "tftp", "", "",
           _tftpd),
    Server("coturn", "/usr/bin/turnserver", 3478, "udp", "stun-binding", "stun", "Coturn",
           "4.6.1", _coturn),
    Server("coap-server", "/usr/bin/coap-server-notls", 5683, "udp", "coap-discover", "coap",
           "", "", _coap),
    Server("nmbd", "/usr/sbin/nmbd", 137, "udp", "netbios-nbstat", "netbios-ns", "", "",
           _nmbd),
    Server("git-daemon", "/usr/lib/git-core/git-daemon", 9418, "tcp", "git-upload-pack", "git",
           "", "", _git_daemon),
    Server("openvpn", "/usr/sbin/openvpn", 1194, "tcp", "openvpn-reset", "openvpn", "", "",
           _openvpn, idle=2.5),
    Server("freeradius", "/usr/sbin/freeradius", 1812, "udp", "radius-access-request",
           "radius", "", "", _freeradius),
    Server("avahi", "/usr/sbin/avahi-daemon", 5353, "udp", "mdns-query", "mdns", "", "",
           _avahi, host="192.0.2.1"),
    Server("zookeeper", "/usr/share/java/zookeeper.jar", 2181, "tcp", "zookeeper-srvr",
           "zookeeper", "Apache ZooKeeper", "3.8.0", _zookeeper),
    Server("fingerd", "/usr/sbin/in.fingerd", 79, "tcp", "finger-list", "finger", "", "",
           _fingerd),
    Server("openssl-dtls", "/usr/bin/openssl", 4433, "udp", "dtls-client-hello", "dtls", "",
           "", _dtls),
    Server("dante-socks4", "/usr/sbin/danted", 1081, "tcp", "socks4-connect", "socks4", "",
           "", _danted),
    Server("dante-socks5", "/usr/sbin/danted", 1082, "tcp", "socks5-greeting", "socks5", "",
           "", _danted),
    Server("lpd", "/usr/sbin/lpd", 515, "tcp", "lpd-queue-state", "printer", "BSD lpd", "",
           _lpd),
    Server("ejabberd", "/usr/sbin/ejabberdctl", 5232, "tcp", "xmpp-stream", "xmpp-client",
           "", "", _ejabberd, user="ejabberd", idle=1.5),
    Server("rsyslog-relp", "/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so", 2514, "tcp",
           "relp-open", "relp", "librelp", "1.11.0", _rsyslog),
    Server("leafnode", "/usr/sbin/leafnode", 119, "tcp", "", "nntp", "Leafnode", "1.12.0",
           _leafnode),
    Server("varnish", "/usr/sbin/varnishd", 6081, "tcp", "http-get", "http",
           "Varnish http accelerator", "7.1", _varnish),
    Server("dictd", "/usr/sbin/dictd", 2628, "tcp", "", "dict", "dictd", "1.13.0/rf", _dictd,
           owner="dictd"),
    Server("rpcbind", "/usr/sbin/rpcbind", 111, "tcp", "rpcbind-dump", "rpcbind", "rpcbind",
           "2-4", _rpcbind),
    # The same daemon over UDP (captured on its own; the bench scans its TCP port).
    Server("rpcbind-udp", "/usr/sbin/rpcbind", 111, "udp", "rpcbind-dump-udp", "rpcbind",
           "rpcbind", "2-4", _rpcbind),
    Server("charon", "/usr/lib/ipsec/charon", 500, "udp", "ike-sa-init", "isakmp", "", "",
           _charon),
)  # fmt: skip


def installed() -> list[Server]:
    """The servers whose daemon is installed here."""
    return [s for s in SERVERS if Path(s.binary).exists()]


def add_test_interface(namespace: str) -> None:
    """Give ``namespace`` a non-loopback IPv4 address (nmbd and tftpd insist on one).

    Both ends of a veth pair stay inside the namespace, on the documentation prefix
    192.0.2.0/24 (RFC 5737): nothing outside can be reached through it.
    """
    ns = ["ip", "netns", "exec", namespace, "ip"]
    subprocess.run([*ns, "link", "add", "pkbr0", "type", "veth", "peer", "name", "pkbr1"],
                   check=True)  # fmt: skip
    subprocess.run([*ns, "addr", "add", "192.0.2.1/24", "dev", "pkbr0"], check=True)
    for dev in ("pkbr0", "pkbr1"):
        subprocess.run([*ns, "link", "set", dev, "up"], check=True)


def start(server: Server, state: Path, namespace: str, port: int) -> subprocess.Popen[bytes]:
    """Start ``server`` on ``port`` inside ``namespace``, its files under ``state``."""
    here = state / f"{server.name}-{port}"
    here.mkdir(mode=0o755)
    argv = server.command(here, port)
    owner = server.user or server.owner
    if owner is not None:
        for path in (here, *here.rglob("*")):
            shutil.chown(path, owner)
    if server.user is not None:
        argv = ["runuser", "-u", server.user, "--", *argv]
    log = (here / "stdout").open("wb")
    try:
        return subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "HOME": str(here)},
        )
    finally:
        log.close()
