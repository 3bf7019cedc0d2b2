"""What the IANA file does not say but every networking course and developer does.

Three kinds of knowledge, applied on top of any IANA-derived data (the shipped file or
a live download), so that they survive ``portkit registry update``:

- ``WELL_KNOWN``: the ports every description of the port system starts with, with a
  plain-language description, the conventional primary name and everyday aliases
  (53/tcp is ``domain`` to IANA and ``dns`` to everyone else).
- ``EXTRA_ALIASES``: everyday names for registered services whose IANA names few people
  use (``rdp`` for ``ms-wbt-server``, ``vnc`` for ``rfb``).
- ``COMMON_USE``: development and operations ports, labelled with what usually runs
  there besides whatever IANA registered (3000 is ``remoteware-cl`` to IANA and a
  Node/React dev server to most people who see it open).
- ``CONVENTIONAL_NAMES``: the short name a scan report shows for such a port where the
  IANA name says nothing to the people who see it open (8000 is ``irdmi`` to IANA and
  ``http-alt`` to everyone running ``python -m http.server``).
"""

from __future__ import annotations

__all__ = ["COMMON_USE", "CONVENTIONAL_NAMES", "EXTRA_ALIASES", "WELL_KNOWN"]

# (primary name, port, transports, extra aliases, plain-language description)
WELL_KNOWN: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("ftp-data", 20, ("tcp",), (), "File transfer: the data channel of FTP"),
    ("ftp", 21, ("tcp",), (), "File transfer (FTP)"),
    ("ssh", 22, ("tcp",), (), "Secure login (SSH): encrypted remote shell and file copy"),
    ("telnet", 23, ("tcp",), (), "Login (Telnet): unencrypted remote terminal"),
    ("smtp", 25, ("tcp",), ("mail",), "Incoming mail (SMTP): mail servers deliver mail here"),
    ("domain", 53, ("tcp", "udp"), ("dns",), "Domain name resolution (DNS)"),
    ("http", 80, ("tcp",), (), "World Wide Web (HTTP)"),
    ("pop2", 109, ("tcp",), (), "Mail retrieval (POP version 2)"),
    ("pop3", 110, ("tcp",), ("pop",), "Mail retrieval (POP3)"),
    ("ntp", 123, ("udp",), (), "Network time (NTP)"),
    ("imap", 143, ("tcp",), ("imap4",), "Mail retrieval (IMAP)"),
    ("snmp", 161, ("udp",), (), "Network device management (SNMP)"),
    ("imap3", 220, ("tcp",), (), "Mail retrieval (IMAP version 3)"),
    ("ldap", 389, ("tcp",), (), "Directory lookup (LDAP)"),
    ("https", 443, ("tcp",), (), "Secure web (HTTP over TLS)"),
    ("submissions", 465, ("tcp",), ("smtps",), "Mail submission over TLS (SMTPS)"),
    ("submission", 587, ("tcp",), (), "Mail submission from mail clients (SMTP + STARTTLS)"),
    ("ldaps", 636, ("tcp",), (), "Directory lookup over TLS (LDAPS)"),
    ("ftps", 990, ("tcp",), (), "File transfer over TLS (FTPS, implicit TLS)"),
    ("imaps", 993, ("tcp",), (), "Mail retrieval over TLS (IMAPS)"),
    ("pop3s", 995, ("tcp",), (), "Mail retrieval over TLS (POP3S)"),
)

# IANA name -> everyday aliases
EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "ms-wbt-server": ("rdp",),
    "rfb": ("vnc",),
    "microsoft-ds": ("smb",),
    "postgresql": ("postgres",),
    "mongodb": ("mongo",),
    "mysql": ("mariadb",),
    "amqp": ("rabbitmq",),
    "memcache": ("memcached",),
}

# (port, transport, what usually runs there)
COMMON_USE: tuple[tuple[int, str, str], ...] = (
    (1025, "tcp", "local mail catchers (MailHog, Mailpit SMTP)"),
    (1313, "tcp", "Hugo dev server"),
    (1883, "tcp", "MQTT brokers (Mosquitto)"),
    (2525, "tcp", "alternate SMTP for development mail sinks"),
    (3000, "tcp", "Node/React dev servers (Express, Create React App, Next.js), Grafana"),
    (3001, "tcp", "Node dev servers (second app)"),
    (3306, "tcp", "MySQL / MariaDB"),
    (4000, "tcp", "Phoenix, Jekyll and other dev servers"),
    (4200, "tcp", "Angular dev server (ng serve)"),
    (4443, "tcp", "HTTPS alternate for development"),
    (5000, "tcp", "Flask dev server, Docker registry, macOS AirPlay receiver"),
    (5001, "tcp", "Flask/ASP.NET dev servers (HTTPS), Synology DSM"),
    (5173, "tcp", "Vite dev server"),
    (5432, "tcp", "PostgreSQL"),
    (5500, "tcp", "VS Code Live Server"),
    (5601, "tcp", "Kibana"),
    (5672, "tcp", "RabbitMQ (AMQP)"),
    (5900, "tcp", "VNC remote desktop"),
    (6006, "tcp", "Storybook, TensorBoard"),
    (6379, "tcp", "Redis"),
    (7007, "tcp", "Backstage developer portal backend"),
    (8000, "tcp", "Django dev server, python -m http.server"),
    (8008, "tcp", "HTTP alternate"),
    (8025, "tcp", "MailHog/Mailpit web UI"),
    (8080, "tcp", "HTTP alternate: proxies, Tomcat, Jenkins, dev servers"),
    (8081, "tcp", "HTTP alternate: Nexus, second dev server"),
    (8082, "tcp", "HTTP alternate: third dev server, Kafka REST proxy"),
    (8443, "tcp", "HTTPS alternate: Tomcat, Kubernetes dashboards"),
    (8888, "tcp", "Jupyter Notebook, HTTP alternate"),
    (9000, "tcp", "PHP-FPM, SonarQube, MinIO"),
    (9090, "tcp", "Prometheus, Cockpit"),
    (9200, "tcp", "Elasticsearch / OpenSearch HTTP API"),
    (9229, "tcp", "Node.js inspector (debugger)"),
    (11211, "tcp", "Memcached"),
    (15672, "tcp", "RabbitMQ management UI"),
    (27017, "tcp", "MongoDB"),
)

# (port, transport) -> the name scan reports show instead of IANA's. Only ports whose
# COMMON_USE note above says what runs there, named by what it speaks: web servers
# (dev servers included) are http-alt / https-alt, as IANA itself names 8008 and 8080;
# a product is named where one product owns the port in practice.
CONVENTIONAL_NAMES: dict[tuple[int, str], str] = {
    **{
        (port, "tcp"): "http-alt"
        for port in (1313, 3000, 3001, 4000, 4200, 5000, 5173, 5500, 6006, 7007, 8000, 8081, 8082,
                     8888)
    },
    **{(port, "tcp"): "https-alt" for port in (4443, 5001, 8443)},
    (1025, "tcp"): "smtp-alt",
    (2525, "tcp"): "smtp-alt",
    (5601, "tcp"): "kibana",
    (8025, "tcp"): "http-alt",
    (9000, "tcp"): "http-alt",
    (9090, "tcp"): "prometheus",
    (9200, "tcp"): "elasticsearch",
    (9229, "tcp"): "node-inspector",
    (15672, "tcp"): "rabbitmq-mgmt",
}  # fmt: skip
