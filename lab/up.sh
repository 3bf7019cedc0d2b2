#!/usr/bin/env bash
# Brings up portkit's lab: Debian's own daemons, with generated configuration, running
# inside a fresh network namespace that has nothing but loopback.
#
#   lab/up.sh [--extra] [--timeout SECONDS] NAME    start the lab in namespace NAME (root)
#   lab/up.sh --check [--extra]                     say what is missing to run the lab
#
# Nothing under /etc is edited and nothing is started outside the namespace: every daemon
# runs through `ip netns exec NAME`, which also gives it a private mount namespace; there
# /run and /etc/resolv.conf are bind-mounted from the lab's state directory, so daemons
# that insist on host paths (inetd's /run/inetd.pid, sshd's /run/sshd) write private copies.
#
# State (configuration, logs, spools, certificates, pids) lives in one world-traversable
# directory under ${TMPDIR:-/tmp}; its path is recorded in lab/state/NAME and printed.
# lab/down.sh NAME stops exactly the processes recorded there and removes it all.
#
# Exit codes: 0 up; 1 a daemon did not come up (already torn down again); 2 usage;
# 3 something the lab needs is missing (root, a binary).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog="lab/up.sh"

usage() {
  sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# die MESSAGE [EXIT_CODE]
die() {
  echo "$prog: $1" >&2
  exit "${2:-1}"
}

# descendants PID: the pids of every process below PID.
descendants() {
  local child
  for child in $(pgrep -P "$1" || true); do
    echo "$child"
    descendants "$child"
  done
}

extra=0
check_only=0
timeout=20
name=""
while [ $# -gt 0 ]; do
  case "$1" in
    --extra) extra=1 ;;
    --check) check_only=1 ;;
    --timeout)
      [ $# -ge 2 ] || usage
      timeout=$2
      shift
      ;;
    -h | --help) usage ;;
    -*) echo "$prog: unknown option '$1'" >&2; usage ;;
    *)
      [ -z "$name" ] || { echo "$prog: one NAME only, not '$name' and '$1'" >&2; usage; }
      name=$1
      ;;
  esac
  shift
done
case "$timeout" in
  '' | *[!0-9]*) echo "$prog: --timeout must be a whole number of seconds, not '$timeout'" >&2; usage ;;
esac

# The binaries each daemon needs, with the Debian package that provides them.
needs=(
  "ip:iproute2" "mount:mount" "openssl:openssl" "ssh-keygen:openssh-client" "setpriv:util-linux"
  "/usr/sbin/nginx:nginx" "/usr/sbin/sshd:openssh-server" "/usr/sbin/postfix:postfix"
  "/usr/lib/postfix/sbin/master:postfix" "/usr/sbin/dovecot:dovecot-core"
  "/usr/lib/dovecot/imap:dovecot-imapd" "/usr/lib/dovecot/pop3:dovecot-pop3d"
  "/usr/sbin/vsftpd:vsftpd" "/usr/sbin/dnsmasq:dnsmasq-base" "/usr/sbin/inetd:openbsd-inetd"
  "/usr/sbin/telnetd:inetutils-telnetd"
)
if [ "$extra" -eq 1 ]; then
  needs+=("/usr/bin/redis-server:redis-server" "/usr/bin/memcached:memcached")
fi

missing=()
for need in "${needs[@]}"; do
  bin=${need%%:*}
  pkg=${need#*:}
  if [[ "$bin" == /* ]]; then
    [ -x "$bin" ] || missing+=("$pkg ($bin)")
  else
    command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg ($bin)")
  fi
done
problems=()
[ "$(id -u)" -eq 0 ] || problems+=("needs root (network namespaces, binding ports below 1024)")
[ ${#missing[@]} -eq 0 ] || problems+=("missing packages: ${missing[*]} (scripts/install-system-deps.sh installs them)")
if [ ${#problems[@]} -gt 0 ]; then
  printf '%s: %s\n' "$prog" "${problems[@]}" >&2
  exit 3
fi
if [ "$check_only" -eq 1 ]; then
  exit 0
fi

[ -n "$name" ] || usage
[[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$ ]] \
  || die "namespace name must be 1-40 letters, digits, '.', '_' or '-', not '$name'" 2
if [ -e "/run/netns/$name" ]; then
  die "network namespace '$name' already exists; run lab/down.sh $name first" 2
fi
if [ -e "$here/state/$name" ]; then
  die "lab '$name' is already recorded in lab/state/$name; run lab/down.sh $name first" 2
fi

# Daemons that drop privileges must traverse every directory above their state.
tmp_root=${TMPDIR:-/tmp}
[ -d "$tmp_root" ] || die "TMPDIR '$tmp_root' is not a directory" 2
tmp_root=$(cd "$tmp_root" && pwd -P)
d=$tmp_root
while [ "$d" != "/" ]; do
  perms=$(stat -c %A "$d")
  [ "${perms:9:1}" = "x" ] || [ "${perms:9:1}" = "t" ] \
    || die "'$d' is not traversable by other users; daemons that drop privileges could not reach the lab's state; set TMPDIR to a directory like /tmp" 2
  d=$(dirname "$d")
done

started_ms=$(date +%s%3N)
mkdir -p "$here/state"
state=$(mktemp -d "$tmp_root/portkit-lab-$name.XXXXXX")
chmod 755 "$state"
echo "$state" >"$here/state/$name"
: >"$state/pids"

ok=0
tls_pid=""
on_exit() {
  [ "$ok" -ne 1 ] || return 0
  if [ -n "${LAB_KEEP_FAILED:-}" ]; then
    echo "$prog: LAB_KEEP_FAILED is set: left namespace $name and $state for inspection" >&2
    return 0
  fi
  echo "$prog: tearing down the partly started lab '$name'" >&2
  if [ -n "$tls_pid" ]; then
    kill -TERM "$tls_pid" 2>/dev/null || true
    wait "$tls_pid" 2>/dev/null || true
  fi
  # Only this script has started anything in a namespace it created seconds ago, so every
  # process in it is the lab's, including a daemon interrupted before its pid was recorded.
  if [ -e "/run/netns/$name" ]; then
    for pid in $(ip netns pids "$name" 2>/dev/null); do
      grep -q "	$pid\$" "$state/pids" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
  fi
  "$here/down.sh" "$name" >&2 || true
}
trap on_exit EXIT
trap 'exit 130' INT TERM

ip netns add "$name"
ip netns exec "$name" ip link set lo up
mkdir -p "$state/log" "$state/run"
echo "$name" >"$state/name"

# Every daemon listens on 127.0.0.1, and on ::1 too when the kernel gives loopback IPv6.
ipv6=0
if ip netns exec "$name" ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128'; then
  ipv6=1
fi
# v6 TEXT: TEXT when the lab has IPv6, else nothing (for optional lines of configuration).
v6() { if [ "$ipv6" -eq 1 ]; then printf '%s' "$1"; fi; }
{ echo "127.0.0.1"; v6 $'::1\n'; } >"$state/addresses"

# The lab's own DNS server is the only resolver a daemon inside can reach.
echo "nameserver 127.0.0.1" >"$state/resolv.conf"
chmod 644 "$state/resolv.conf"

# start DAEMON CMD...: run CMD in the namespace, in the foreground, and record its pid.
# `env -i`, `ip netns exec` and `sh -c 'exec ...'` all exec, so $! is the daemon's own pid;
# the daemon gets a clean environment (nothing of the caller's leaks into its behaviour).
# PORTKIT_LAB_BREAK=DAEMON (or DAEMON:silent) replaces that daemon by one that exits at once
# (or runs but never listens): the lab's own tests use it to check the failure path.
start() {
  local daemon=$1
  shift
  case "${PORTKIT_LAB_BREAK:-}" in
    "$daemon") set -- /bin/sh -c 'echo "broken on purpose by PORTKIT_LAB_BREAK" >&2; exit 1' ;;
    "$daemon:silent") set -- /bin/sleep 600 ;;
  esac
  mkdir -p "$state/run/$daemon"
  chmod 755 "$state/run/$daemon"
  # shellcheck disable=SC2016 # expanded by the inner shell
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 ip netns exec "$name" /bin/sh -c '
    if [ -e /etc/resolv.conf ]; then mount --bind "$2" /etc/resolv.conf; fi
    mount --bind "$1" /run
    shift 2
    exec "$@"' "lab-$daemon" "$state/run/$daemon" "$state/resolv.conf" "$@" \
    </dev/null >"$state/log/$daemon.out" 2>&1 &
  printf '%s\t%s\n' "$daemon" "$!" >>"$state/pids"
}

# ---- TLS: one self-signed certificate for nginx (443) and dovecot (993, 995). RSA key
# generation is the slowest step (0.1-1 s), so it runs while the other daemons start.
mkdir -p "$state/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=lab.portkit.test" \
  -addext "subjectAltName=DNS:lab.portkit.test,IP:127.0.0.1" \
  -keyout "$state/tls/key.pem" -out "$state/tls/cert.pem" >"$state/log/openssl.out" 2>&1 &
tls_pid=$!

# ---- postfix: SMTP on 25, with a private configuration directory and queue
pf=$state/postfix
mkdir -p "$pf/conf"
cat >"$pf/conf/main.cf" <<EOF
# portkit lab: postfix with a private configuration directory
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.lab.portkit.test
mydomain = lab.portkit.test
myorigin = \$myhostname
mydestination = \$myhostname, localhost
inet_interfaces = 127.0.0.1$(v6 ", [::1]")
inet_protocols = ipv4$(v6 ", ipv6")
mynetworks = 127.0.0.0/8$(v6 " [::1]/128")
smtpd_banner = \$myhostname ESMTP \$mail_name (Debian/GNU)
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
maillog_file_prefixes = $state
maillog_file = $state/log/postfix.log
EOF
# Every service runs unchrooted: a chroot would need copies of /etc files in the queue.
cat >"$pf/conf/master.cf" <<'EOF'
# service  type       private unpriv chroot wakeup maxproc command
smtp       inet       n       -      n      -      -       smtpd
pickup     unix       n       -      n      60     1       pickup
cleanup    unix       n       -      n      -      0       cleanup
qmgr       unix       n       -      n      300    1       qmgr
tlsmgr     unix       -       -      n      1000?  1       tlsmgr
rewrite    unix       -       -      n      -      -       trivial-rewrite
bounce     unix       -       -      n      -      0       bounce
defer      unix       -       -      n      -      0       bounce
trace      unix       -       -      n      -      0       bounce
verify     unix       -       -      n      -      1       verify
flush      unix       n       -      n      1000?  0       flush
proxymap   unix       -       -      n      -      -       proxymap
proxywrite unix       -       -      n      -      1       proxymap
smtp       unix       -       -      n      -      -       smtp
relay      unix       -       -      n      -      -       smtp
showq      unix       n       -      n      -      -       showq
error      unix       -       -      n      -      -       error
retry      unix       -       -      n      -      -       error
discard    unix       -       -      n      -      -       discard
local      unix       -       n      n      -      -       local
virtual    unix       -       n      n      -      -       virtual
lmtp       unix       -       -      n      -      -       lmtp
anvil      unix       -       -      n      -      1       anvil
scache     unix       -       -      n      -      1       scache
postlog    unix-dgram n       -      n      -      1       postlogd
EOF
if [ "$extra" -eq 1 ]; then
  # Mail submission with STARTTLS required (587, RFC 6409) and over implicit TLS (465, RFC 8314).
  cat >>"$pf/conf/master.cf" <<EOF
587        inet       n       -      n      -      -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_cert_file=$state/tls/cert.pem
  -o smtpd_tls_key_file=$state/tls/key.pem
465        inet       n       -      n      -      -       smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_cert_file=$state/tls/cert.pem
  -o smtpd_tls_key_file=$state/tls/key.pem
EOF
fi
# Postfix will not read a configuration file modified within the last second or so (it
# waits, re-reading, in case an editor is still writing): date them a minute back.
touch -d "@$(($(date +%s) - 60))" "$pf/conf/main.cf" "$pf/conf/master.cf"

# The queue and data directories, with the owners and modes postfix's own manifest
# (postfix-files) gives them. `postfix post-install create-missing` does the same in ~2 s;
# reading the manifest takes milliseconds.
manifest=/etc/postfix/postfix-files
[ -r "$manifest" ] || die "postfix's manifest $manifest is missing; is postfix installed?" 3
while IFS=: read -r path type owner group mode _; do
  [ "$type" = "d" ] || continue
  # The manifest names directories by postfix parameter, literally: '$queue_directory/...'.
  # shellcheck disable=SC2016
  case "$path" in
    '$queue_directory'*) dir=$pf/queue${path#\$queue_directory} ;;
    '$data_directory') dir=$pf/data ;;
    *) continue ;;
  esac
  owner=${owner//\$mail_owner/postfix}
  group=${group//\$setgid_group/postdrop}
  [ "$group" = "-" ] && group=""  # chown OWNER: means the owner's login group
  mkdir -m "$mode" "$dir"
  chown "$owner:$group" "$dir"
done <"$manifest"
if [ ! -d "$pf/queue/public" ] || [ ! -d "$pf/data" ]; then
  die "postfix's manifest $manifest did not list the queue directories this lab expects"
fi

# ---- nginx: HTTP on 80, 8080, 3000, 8888 and HTTPS on 443
ng=$state/nginx
mkdir -p "$ng/tmp" "$state/www"
cat >"$state/www/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><title>portkit lab</title></head>
<body><p>portkit lab: nginx</p></body></html>
EOF
chmod 644 "$state/www/index.html"
cat >"$ng/nginx.conf" <<EOF
# portkit lab: nginx
user www-data;
worker_processes 1;
pid $ng/nginx.pid;
error_log $state/log/nginx-error.log;
events { worker_connections 512; }
http {
    types { text/html html; text/plain txt; }
    default_type text/plain;
    access_log $state/log/nginx-access.log;
    client_body_temp_path $ng/tmp/client_body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    server {
$(ports="80 8080 3000 8888 443"
  [ "$extra" -eq 1 ] && ports="$ports 8443"
  for port in $ports; do
    ssl=""
    case "$port" in 443 | 8443) ssl=" ssl" ;; esac
    echo "        listen 127.0.0.1:$port$ssl;"
    v6 "        listen [::1]:$port$ssl;"$'\n'
  done)
        server_name lab.portkit.test;
        ssl_certificate $state/tls/cert.pem;
        ssl_certificate_key $state/tls/key.pem;
        root $state/www;
        index index.html;
        add_header X-Lab-Port \$server_port;
    }
}
EOF

# ---- openssh: one sshd on 22 and 2222 with its own host keys
ss=$state/ssh
mkdir -p "$ss" "$state/run/sshd/sshd"
chmod 755 "$state/run/sshd" "$state/run/sshd/sshd"
ssh-keygen -q -t ed25519 -N '' -C lab -f "$ss/ssh_host_ed25519_key"
ssh-keygen -q -t ecdsa -b 256 -N '' -C lab -f "$ss/ssh_host_ecdsa_key"
cat >"$ss/sshd_config" <<EOF
# portkit lab: openssh
Port 22
Port 2222
ListenAddress 127.0.0.1
$(v6 "ListenAddress ::1")
HostKey $ss/ssh_host_ed25519_key
HostKey $ss/ssh_host_ecdsa_key
PidFile $ss/sshd.pid
UsePAM no
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
UseDNS no
EOF
start sshd /usr/sbin/sshd -D -f "$ss/sshd_config" -E "$state/log/sshd.log"

# ---- dovecot: POP3 110, IMAP 143, IMAPS 993, POP3S 995; one user with a Maildir
dv=$state/dovecot
mkdir -p "$dv/run" "$dv/state"
mail_home=$state/mail/labuser
mkdir -p "$mail_home/Maildir/cur" "$mail_home/Maildir/new" "$mail_home/Maildir/tmp"
cat >"$mail_home/Maildir/new/1700000000.lab1.lab.portkit.test" <<'EOF'
From: portkit lab <lab@lab.portkit.test>
To: labuser@lab.portkit.test
Subject: welcome to the portkit lab
Date: Tue, 14 Nov 2023 22:13:20 +0000
Message-ID: <welcome@lab.portkit.test>

This message is in labuser's Maildir so POP3 and IMAP have something to list.
EOF
chown -R nobody:nogroup "$state/mail"
printf 'labuser:{PLAIN}labpass::::::\n' >"$dv/users"
chmod 640 "$dv/users"
chgrp dovecot "$dv/users"
cat >"$dv/dovecot.conf" <<EOF
# portkit lab: dovecot
protocols = imap pop3
listen = 127.0.0.1$(v6 ", ::1")
base_dir = $dv/run
state_dir = $dv/state
instance_name = portkit-lab-$name
log_path = $state/log/dovecot.log
ssl = yes
ssl_cert = <$state/tls/cert.pem
ssl_key = <$state/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
passdb {
  driver = passwd-file
  args = scheme=PLAIN $dv/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$state/mail/%n
}
service imap-login {
  inet_listener imap {
    port = 143
  }
  inet_listener imaps {
    port = 993
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 110
  }
  inet_listener pop3s {
    port = 995
    ssl = yes
  }
}
EOF

# ---- vsftpd: anonymous, read-only FTP on 21
vs=$state/vsftpd
mkdir -p "$vs/empty" "$state/ftp/pub"
echo "portkit lab: a file for anonymous FTP" >"$state/ftp/pub/README.txt"
chmod 755 "$vs/empty" "$state/ftp" "$state/ftp/pub"
chmod 644 "$state/ftp/pub/README.txt"
cat >"$vs/vsftpd.conf" <<EOF
# portkit lab: vsftpd
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=21
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root=$state/ftp
local_enable=NO
write_enable=NO
anon_upload_enable=NO
anon_mkdir_write_enable=NO
anon_other_write_enable=NO
ftp_username=ftp
nopriv_user=nobody
secure_chroot_dir=$vs/empty
hide_ids=YES
xferlog_enable=YES
vsftpd_log_file=$state/log/vsftpd.log
EOF
start vsftpd /usr/sbin/vsftpd "$vs/vsftpd.conf"
if [ "$ipv6" -eq 1 ]; then
  # One vsftpd listens on one address; a second one serves ::1.
  sed -e 's/^listen=YES$/listen=NO/' -e 's/^listen_ipv6=NO$/listen_ipv6=YES/' \
    -e 's/^listen_address=127.0.0.1$/listen_address6=::1/' "$vs/vsftpd.conf" >"$vs/vsftpd6.conf"
  start vsftpd6 /usr/sbin/vsftpd "$vs/vsftpd6.conf"
fi

# ---- dnsmasq: DNS on 53 tcp+udp, authoritative for lab.portkit.test, no upstream
dn=$state/dnsmasq
mkdir -p "$dn"
cat >"$dn/dnsmasq.conf" <<EOF
# portkit lab: dnsmasq
port=53
listen-address=127.0.0.1$(v6 ",::1")
bind-interfaces
no-resolv
no-hosts
no-poll
user=nobody
group=nogroup
pid-file=$dn/dnsmasq.pid
log-facility=$state/log/dnsmasq.log
auth-server=ns.lab.portkit.test
auth-zone=lab.portkit.test
auth-soa=2026112601,hostmaster.lab.portkit.test
host-record=lab.portkit.test,127.0.0.1
host-record=ns.lab.portkit.test,127.0.0.1
host-record=www.lab.portkit.test,127.0.0.1
host-record=mail.lab.portkit.test,127.0.0.1
mx-host=lab.portkit.test,mail.lab.portkit.test,10
txt-record=lab.portkit.test,"portkit lab"
EOF
start dnsmasq /usr/sbin/dnsmasq -k --conf-file="$dn/dnsmasq.conf"

# ---- telnet: openbsd-inetd runs inetutils-telnetd on 23 (inetd's /run is private)
mkdir -p "$state/inetd"
{
  printf '127.0.0.1:telnet\tstream\ttcp\tnowait\troot\t/usr/sbin/telnetd\ttelnetd\n'
  v6 $'[::1]:telnet\tstream\ttcp6\tnowait\troot\t/usr/sbin/telnetd\ttelnetd\n'
} >"$state/inetd/inetd.conf"
start inetd /usr/sbin/inetd -i "$state/inetd/inetd.conf"

# ---- extra real servers on non-standard ports (--extra)
if [ "$extra" -eq 1 ]; then
  mkdir -p "$state/redis"
  chown redis:redis "$state/redis"
  redis_bind=(127.0.0.1)
  [ "$ipv6" -eq 0 ] || redis_bind+=(::1)
  start redis /usr/bin/setpriv --reuid=redis --regid=redis --init-groups \
    /usr/bin/redis-server --bind "${redis_bind[@]}" --port 7000 --daemonize no --protected-mode yes \
    --dir "$state/redis" --save '' --appendonly no --logfile "$state/redis/redis.log"
  start memcached /usr/bin/memcached -u memcache -l "127.0.0.1$(v6 ',[::1]')" -p 9000 -U 0 -m 16
fi

# ---- the daemons that need the certificate
wait "$tls_pid" || die "openssl could not make the lab certificate: $(tail -1 "$state/log/openssl.out")"
chmod 600 "$state/tls/key.pem"
chmod 644 "$state/tls/cert.pem"
start postfix /usr/lib/postfix/sbin/master -c "$pf/conf" -d
start nginx /usr/sbin/nginx -e "$state/log/nginx-error.log" -c "$ng/nginx.conf" -g "daemon off;"
start dovecot /usr/sbin/dovecot -F -c "$dv/dovecot.conf"

# ---- wait until every port answers (bounded), naming the daemon that did not
# Targets are ADDRESS/PORT (bash's /dev/tcp form); each maps to the daemon that serves it.
declare -A target_daemon=()
expect() {
  local daemon=$1 port
  shift
  for port in "$@"; do
    target_daemon["127.0.0.1/$port"]=$daemon
    if [ "$ipv6" -eq 1 ]; then
      target_daemon["::1/$port"]=$daemon
      [ "$daemon" = vsftpd ] && target_daemon["::1/$port"]=vsftpd6
    fi
  done
  return 0
}
expect nginx 80 443 3000 8080 8888
expect sshd 22 2222
expect postfix 25
expect dovecot 110 143 993 995
expect vsftpd 21
expect dnsmasq 53
expect inetd 23
if [ "$extra" -eq 1 ]; then
  expect redis 7000
  expect memcached 9000
  expect postfix 465 587
  expect nginx 8443
fi
# show TARGET: how a message names it (21 for 127.0.0.1/21, [::1]:21 for ::1/21).
show() { case "$1" in 127.0.0.1/*) echo "${1#*/}" ;; *) echo "[${1%/*}]:${1##*/}" ;; esac; }
pending=$(printf '%s\n' "${!target_daemon[@]}" | sort -t/ -k2n | tr '\n' ' ')
deadline=$(($(date +%s) + timeout))
while :; do
  # One process inside the namespace tries every pending target; it prints those that accept.
  # shellcheck disable=SC2016
  ready=$(ip netns exec "$name" /bin/bash -c '
    for t in $1; do (exec 3<>"/dev/tcp/$t") 2>/dev/null && echo "$t"; done
    exit 0' lab-wait "$pending")
  still=""
  for t in $pending; do
    grep -qxF "$t" <<<"$ready" || still="$still $t"
  done
  pending=${still# }
  [ -n "$pending" ] || break
  # A daemon that exited will not come up: say so at once.
  while IFS=$'\t' read -r daemon pid; do
    if ! kill -0 "$pid" 2>/dev/null; then
      die "$daemon exited before answering on its ports; its log: $(tail -3 "$state/log/$daemon.out" | tr '\n' ' ')"
    fi
  done <"$state/pids"
  if [ "$(date +%s)" -ge "$deadline" ]; then
    names=""
    logs=""
    for t in $pending; do names="$names ${target_daemon[$t]}:$(show "$t")"; done
    for daemon in $(for t in $pending; do echo "${target_daemon[$t]}"; done | sort -u); do
      logs="$logs; $daemon says: $(tail -2 "$state/log/$daemon.out" | tr '\n' ' ')"
    done
    die "not answering after ${timeout} s:$names$logs"
  fi
  sleep 0.1
done

ok=1
elapsed_ms=$(($(date +%s%3N) - started_ms))
printf 'lab %s up in %d.%01d s: %s\n' "$name" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) \
  "$(cut -f1 "$state/pids" | tr '\n' ' ')"
echo "state: $state"
echo "run inside it: ip netns exec $name COMMAND    stop it: lab/down.sh $name"
