#!/usr/bin/env bash
# Installs the Debian packages that portkit's tests, lab and benchmarks talk to:
# real peers (nmap, curl, socat, wrk, chromium) and real daemons for the lab
# (nginx, openssh, postfix, dovecot, vsftpd, dnsmasq, inetd + telnetd), and more real servers
# that identification is tested against (PostgreSQL, MariaDB, Mosquitto, OpenLDAP, net-snmp,
# NTPsec, TigerVNC, xrdp, Samba, RabbitMQ, lighttpd, Redis, memcached), and the servers of
# the less common families (lab/breadth.py: Squid, Tinyproxy, CUPS, ngIRCd, InspIRCd,
# Prosody, svnserve, oidentd, beanstalkd, microsocks, etcd, node exporter, InfluxDB,
# tftpd-hpa, coturn, libcoap, FreeRADIUS, Avahi, strongSwan, OpenVPN, Dante, BSD lpd,
# rsyslog with RELP, ejabberd, Leafnode, Varnish, rpcbind, dictd).
#
# Nothing is started in the host's namespace: a temporary policy-rc.d refuses every
# service start during the install, and postfix is preseeded to "No configuration".
# Without root it only says what it would need; the tests that need those packages
# then skip and say why.
set -euo pipefail

packages=(
  nmap ndiff xsltproc curl socat wrk iproute2 openssl lsof procps zsh fish goaccess
  nginx openssh-server openssh-client postfix dovecot-imapd dovecot-pop3d vsftpd
  dnsmasq-base openbsd-inetd inetutils-telnetd fetchmail
  redis-server memcached
  nftables postgresql mariadb-server mosquitto slapd snmpd ntpsec
  tigervnc-standalone-server xrdp samba rabbitmq-server lighttpd nghttp2-server
  squid tinyproxy cups-daemon ngircd inspircd prosody subversion oidentd beanstalkd
  microsocks etcd-server prometheus-node-exporter influxdb tftpd-hpa coturn libcoap3-bin
  freeradius avahi-daemon strongswan-charon openvpn rsync git fingerd finger
  dante-server lpr rsyslog-relp ejabberd
  leafnode varnish rpcbind dictd dictfmt
  chromium ffmpeg
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: not root, not installing: ${missing[*]}" >&2
  echo "install-system-deps: tests that need these packages will skip and say why" >&2
  exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { [ "$created_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/portkit-apt.log 2>&1; then
  apt-get update -q >/dev/null 2>&1 || true
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/portkit-apt.log 2>&1 || {
    tail -20 /tmp/portkit-apt.log >&2
    exit 1
  }
fi
# Packages whose maintainer scripts enable a service must not leave one running here.
for svc in nginx ssh postfix dovecot vsftpd openbsd-inetd redis-server memcached \
  postgresql mariadb mosquitto slapd snmpd ntpsec xrdp smbd rabbitmq-server lighttpd \
  squid tinyproxy cups ngircd inspircd prosody oidentd beanstalkd etcd \
  prometheus-node-exporter influxdb tftpd-hpa coturn freeradius avahi-daemon \
  strongswan-starter openvpn; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
echo "install-system-deps: done"
