#!/usr/bin/env python3
"""Capture what real servers answer to portkit's probes, as test fixtures.

    sudo .venv/bin/python lab/capture-fixtures.py [--out tests/proto/fixtures]

Brings the lab up (``lab/up.sh --extra`` in a namespace of its own), starts the further
daemons it finds installed (PostgreSQL, MariaDB, Mosquitto, OpenLDAP, net-snmp, NTPsec,
TigerVNC, xrdp, Samba, RabbitMQ, lighttpd)
inside that namespace on 127.0.0.1 with generated configuration, then for each target
connects (through TLS where the port is TLS), sends the probe the identification ladder
would send (or nothing, for servers that greet first), and saves the bytes that came back.
``manifest.json`` beside them records, per fixture, the probe, whether it was inside TLS,
and what the server is known to be (from lab/ground-truth.tsv, or from the daemon table
below): the tests check the matchers against that truth, not against themselves.

Everything runs inside the namespace and is torn down at the end, even on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import breadth  # noqa: E402  (lab/breadth.py: the servers of the less common protocols)

NAMESPACE = "pk-identify-capture"
HOST = "127.0.0.1"
READ_CAP = 16 * 1024
IDLE = 0.5  # seconds of silence that end an answer


@dataclass(frozen=True)
class Target:
    name: str  # fixture file stem
    port: int
    transport: str
    probe: str | None  # a probe name from portkit.proto, or None to only listen
    tls: bool
    service: str
    product: str
    version: str
    idle: float = IDLE  # seconds of silence that end the answer (a slow registration)
    host: str = HOST  # where to send (avahi answers only on a non-loopback address)


@dataclass(frozen=True)
class Daemon:
    """A further server started inside the namespace for fixtures."""

    name: str
    binary: str
    port: int
    transport: str
    probe: str
    service: str
    product: str


EXTRA_DAEMONS = (
    Daemon("postgresql", "/usr/lib/postgresql/15/bin/postgres", 5432, "tcp",
           "postgresql-startup", "postgresql", "PostgreSQL"),
    Daemon("mariadb", "/usr/sbin/mariadbd", 3306, "tcp", "", "mysql", "MariaDB"),
    Daemon("mosquitto", "/usr/sbin/mosquitto", 1883, "tcp", "mqtt-connect", "mqtt", ""),
    Daemon("slapd", "/usr/sbin/slapd", 389, "tcp", "ldap-rootdse", "ldap", "OpenLDAP"),
    Daemon("snmpd", "/usr/sbin/snmpd", 161, "udp", "snmp-v3-discovery", "snmp", "net-snmp"),
    Daemon("ntpd", "/usr/sbin/ntpd", 123, "udp", "ntp-client", "ntp", ""),
    Daemon("tigervnc", "/usr/bin/Xtigervnc", 5900, "tcp", "", "rfb", ""),
    Daemon("xrdp", "/usr/sbin/xrdp", 3389, "tcp", "rdp-negotiate", "ms-wbt-server", ""),
    Daemon("samba", "/usr/sbin/smbd", 445, "tcp", "smb-negotiate", "microsoft-ds", ""),
    Daemon("rabbitmq", "/usr/lib/rabbitmq/bin/rabbitmq-server", 5672, "tcp", "amqp-header",
           "amqp", "RabbitMQ"),
    Daemon("lighttpd", "/usr/sbin/lighttpd", 8081, "tcp", "http-get", "http", "lighttpd"),
)  # fmt: skip


def lab_targets() -> list[Target]:
    lines = [
        line
        for line in (HERE / "ground-truth.tsv").read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    ]
    targets = []
    for row in csv.DictReader(lines, delimiter="\t"):
        port, transport, service = int(row["port"]), row["transport"], row["service"]
        probe = {
            ("http", "tcp"): "http-get",
            ("https", "tcp"): "http-get",
            ("domain", "tcp"): "dns-version-tcp",
            ("domain", "udp"): "dns-version-udp",
            ("redis", "tcp"): "redis-ping",
            ("memcache", "tcp"): "memcached-version",
        }.get((service, transport))
        targets.append(
            Target(
                name=f"{service}-{port}-{transport}",
                port=port,
                transport=transport,
                probe=probe,
                tls=row["tls"] == "yes",
                service=service,
                product=row["product"] if row["announced"] == "yes" else "",
                version=row["version"],
            )
        )
    return targets


def run_ns(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ip", "netns", "exec", NAMESPACE, *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


def stop_strays() -> None:
    """End what our daemons left running in the namespace (RabbitMQ's epmd daemonizes).

    Everything in the namespace was started by this script or by lab/up.sh. Orphans
    (parent pid 1) that the lab did not record are ours; the lab's daemons and their
    children are left to lab/down.sh.
    """
    state = Path((HERE / "state" / NAMESPACE).read_text().strip())
    lab = {int(line.split("\t")[1]) for line in (state / "pids").read_text().splitlines() if line}
    listed = subprocess.run(["ip", "netns", "pids", NAMESPACE], capture_output=True, text=True)
    for pid in (int(p) for p in listed.stdout.split()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # already gone
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == 1 and pid not in lab:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def start_daemon(d: Daemon, state: Path) -> subprocess.Popen[bytes] | None:
    """Start daemon ``d`` inside the namespace with configuration under ``state``."""
    here = state / d.name
    here.mkdir(mode=0o755)
    if d.name == "postgresql":
        shutil.chown(here, "postgres")
        (here / "pw").write_text("portkit-capture\n")
        shutil.chown(here / "pw", "postgres")
        initdb = ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/initdb",
                  "-D", str(here / "data"), "--auth=scram-sha-256", "-U", "postgres",
                  f"--pwfile={here / 'pw'}"]  # fmt: skip
        subprocess.run(initdb, check=True, capture_output=True)
        return run_ns(["runuser", "-u", "postgres", "--", d.binary, "-D", str(here / "data"),
                       "-k", str(here), "-c", f"listen_addresses={HOST}", "-p", str(d.port)])  # fmt: skip
    if d.name == "mariadb":
        shutil.chown(here, "mysql")
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={here / 'data'}", "--user=mysql",
             "--skip-test-db", "--auth-root-authentication-method=socket"],
            check=True, capture_output=True,
        )  # fmt: skip
        return run_ns([d.binary, "--no-defaults", f"--datadir={here / 'data'}",
                       f"--socket={here / 'sock'}", f"--pid-file={here / 'pid'}",
                       f"--port={d.port}", f"--bind-address={HOST}", "--user=mysql",
                       "--skip-log-error"])  # fmt: skip
    if d.name == "mosquitto":
        conf = here / "mosquitto.conf"
        conf.write_text(f"listener {d.port} {HOST}\nallow_anonymous true\nuser root\n")
        return run_ns([d.binary, "-c", str(conf)])
    if d.name == "slapd":
        (here / "db").mkdir()
        conf = here / "slapd.conf"
        conf.write_text(
            "include /etc/ldap/schema/core.schema\n"
            f"pidfile {here / 'slapd.pid'}\n"
            "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
            'database mdb\nsuffix "dc=lab,dc=portkit,dc=test"\n'
            f"directory {here / 'db'}\n"
        )
        return run_ns([d.binary, "-d", "0", "-h", f"ldap://{HOST}:{d.port}/", "-f", str(conf)])
    if d.name == "snmpd":
        conf = here / "snmpd.conf"
        conf.write_text(f"agentAddress udp:{HOST}:{d.port}\nrocommunity public {HOST}\n")
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(here)}
        return run_ns([d.binary, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(here / "pid")],
                      env=env)  # fmt: skip
    if d.name == "ntpd":
        conf = here / "ntp.conf"
        conf.write_text(f"driftfile {here / 'drift'}\n")
        return run_ns([d.binary, "-n", "-c", str(conf), "-I", "lo"])
    if d.name == "tigervnc":
        return run_ns([d.binary, ":57", "-rfbport", str(d.port), "-SecurityTypes", "None",
                       "-interface", HOST, "-nolisten", "tcp"])  # fmt: skip
    if d.name == "xrdp":
        # xrdp insists on /run/xrdp: give it a private /run in its own mount namespace.
        (here / "run" / "xrdp").mkdir(parents=True)
        return run_ns(["sh", "-c", f"mount --bind {here / 'run'} /run && "
                       f"exec {d.binary} --nodaemon --port {d.port}"])  # fmt: skip
    if d.name == "samba":
        dirs = {k: here / k for k in ("lock", "state", "cache", "private", "pid", "log")}
        for path in dirs.values():
            path.mkdir()
        conf = here / "smb.conf"
        conf.write_text(
            "[global]\n interfaces = lo\n bind interfaces only = yes\n"
            f" smb ports = {d.port}\n disable netbios = yes\n"
            " server role = standalone server\n"
            f" lock directory = {dirs['lock']}\n state directory = {dirs['state']}\n"
            f" cache directory = {dirs['cache']}\n private dir = {dirs['private']}\n"
            f" pid directory = {dirs['pid']}\n log file = {dirs['log']}/log.%m\n"
        )
        return run_ns([d.binary, "-F", "--no-process-group", "-s", str(conf)])
    if d.name == "rabbitmq":
        env = {**os.environ, "HOME": str(here), "RABBITMQ_NODENAME": "rabbit@localhost",
               "RABBITMQ_NODE_IP_ADDRESS": HOST, "RABBITMQ_NODE_PORT": str(d.port),
               "RABBITMQ_DIST_PORT": "25672", "RABBITMQ_MNESIA_BASE": str(here / "mnesia"),
               "RABBITMQ_LOG_BASE": str(here / "log"),
               "RABBITMQ_CONFIG_FILE": str(here / "none"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(here / "plugins")}  # fmt: skip
        return run_ns([d.binary], env=env)
    if d.name == "lighttpd":
        (here / "www").mkdir()
        (here / "www" / "index.html").write_text("portkit fixture\n")
        conf = here / "lighttpd.conf"
        conf.write_text(
            f'server.document-root = "{here / "www"}"\nserver.port = {d.port}\n'
            f'server.bind = "{HOST}"\nserver.pid-file = "{here / "pid"}"\n'
            f'server.errorlog = "{here / "error.log"}"\n'
        )
        return run_ns([d.binary, "-D", "-f", str(conf)])
    return None


async def capture(target: Target) -> bytes:
    """Connect to ``target`` and return what it answers to its probe (bounded)."""
    sys.path.insert(0, str(REPO / "src"))
    from portkit import proto

    probes = {p.name: p for p in (*proto.TCP_PROBES, *proto.UDP_PROBES, *proto.FOLLOW_UP_PROBES)}
    payload = probes[target.probe].build(target.host) if target.probe else b""
    if target.transport == "udp":
        return await _capture_udp(target.host, target.port, payload)
    ctx = None
    if target.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, target.port, ssl=ctx), 5)
    data = bytearray()
    try:
        if payload:
            writer.write(payload)
            await writer.drain()
        while len(data) < READ_CAP:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), target.idle)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    return bytes(data[:READ_CAP])


async def _capture_udp(host: str, port: int, payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not got.done():
                got.set_result(data)

    # Not connected: a TFTP server answers from a port of its own (RFC 1350 section 4).
    transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=(host, 0))
    try:
        for _ in range(3):  # a daemon may still be starting
            transport.sendto(payload, (host, port))
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(got), 2)
        return b""
    finally:
        transport.close()


def inside(out: Path, targets: list[Target], merge: bool = False) -> int:
    """Run in the namespace: capture every target and write the fixtures.

    With ``merge`` the manifest keeps the fixtures of servers not captured this time.
    """
    manifest = json.loads((out / "manifest.json").read_text()) if merge else {}
    for target in targets:
        data = b""
        failure: OSError | None = None
        for _ in range(20):  # wait for slow starters (MariaDB, PostgreSQL)
            try:
                data = asyncio.run(capture(target))
            except OSError as exc:
                failure = exc
                time.sleep(0.5)
                continue
            if data:
                break
            time.sleep(0.5)
        if not data:
            why = f" (last: {failure})" if failure else ""
            print(f"capture: {target.name}: no answer, skipped{why}", file=sys.stderr)
            continue
        (out / f"{target.name}.bin").write_bytes(data)
        manifest[target.name] = {
            "port": target.port,
            "transport": target.transport,
            "probe": target.probe,
            "tls": target.tls,
            "service": target.service,
            "product": target.product,
            "version": target.version,
        }
        print(f"capture: {target.name}: {len(data)} bytes")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return 0


def _breadth_target(server: breadth.Server) -> Target:
    return Target(
        name=f"{server.service}-{server.port}-{server.transport}-{server.name}",
        port=server.port, transport=server.transport, probe=server.probe or None, tls=False,
        service=server.service, product=server.product, version=server.version,
        idle=server.idle, host=server.host,
    )  # fmt: skip


def capture_only(out: Path, names: list[str]) -> int:
    """Capture the named servers of lab/breadth.py in a namespace of their own."""
    known = {s.name: s for s in breadth.SERVERS}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"capture-fixtures: no such server {unknown[0]!r}", file=sys.stderr)
        return 2
    namespace = f"pk-capture-{os.getpid()}"
    state = Path(tempfile.mkdtemp(prefix="portkit-capture-"))
    state.chmod(0o755)
    started: list[subprocess.Popen[bytes]] = []
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"],
                       check=True)  # fmt: skip
        breadth.add_test_interface(namespace)
        servers = [known[n] for n in names]
        started = [breadth.start(s, state, namespace, s.port) for s in servers]
        spec = json.dumps([_breadth_target(s).__dict__ for s in servers])
        cmd = ["ip", "netns", "exec", namespace, sys.executable, __file__, "--inside", "--only",
               ",".join(names), "--out", str(out), "--targets", spec]  # fmt: skip
        return subprocess.run(cmd, check=False).returncode
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        subprocess.run(["ip", "netns", "del", namespace], check=False)
        shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "proto" / "fixtures")
    parser.add_argument(
        "--only",
        help="comma-separated servers of lab/breadth.py to capture alone (others kept)",
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--targets", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        targets = [Target(**t) for t in json.loads(args.targets)]
        return inside(args.out, targets, merge=args.only is not None)
    if os.geteuid() != 0:
        print("capture-fixtures: needs root (network namespace)", file=sys.stderr)
        return 3
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only is not None:
        return capture_only(args.out, args.only.split(","))
    subprocess.run([str(HERE / "up.sh"), "--extra", NAMESPACE], check=True)
    breadth.add_test_interface(NAMESPACE)
    state = Path(tempfile.mkdtemp(prefix="portkit-capture-"))
    state.chmod(0o755)
    started: list[subprocess.Popen[bytes]] = []
    try:
        targets = lab_targets()
        for d in EXTRA_DAEMONS:
            if not Path(d.binary).exists():
                print(f"capture: {d.name} not installed, skipped", file=sys.stderr)
                continue
            proc = start_daemon(d, state)
            if proc is None:
                continue
            started.append(proc)
            targets.append(
                Target(name=f"{d.service}-{d.port}-{d.transport}", port=d.port,
                       transport=d.transport, probe=d.probe or None, tls=False,
                       service=d.service, product=d.product, version="")
            )  # fmt: skip
        for server in breadth.installed():
            started.append(breadth.start(server, state, NAMESPACE, server.port))
            targets.append(_breadth_target(server))
        spec = json.dumps([t.__dict__ for t in targets])
        cmd = ["ip", "netns", "exec", NAMESPACE, sys.executable, __file__, "--inside",
               "--out", str(args.out), "--targets", spec]  # fmt: skip
        return subprocess.run(cmd, check=False).returncode
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        stop_strays()
        subprocess.run([str(HERE / "down.sh"), NAMESPACE], check=False)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
