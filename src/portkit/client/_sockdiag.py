"""Listening sockets straight from the Linux kernel: netlink ``sock_diag`` and ``/proc``.

The kernel answers "which TCP sockets are in LISTEN, which UDP sockets are unconnected"
itself when asked over a ``NETLINK_SOCK_DIAG`` socket (linux/inet_diag.h), filtering by
state on its side, so there is no text table of every connection to read and parse.
The owners are found as ``ss -p`` finds them: the socket's inode among the descriptors
in ``/proc/PID/fd``, which is only readable for this user's processes unless root.
"""

from __future__ import annotations

# The C module, not `socket`: building socket.py's enums costs start-up, and this needs
# nothing from them.
import _socket as socket
import os
import struct

__all__ = ["RawSocket", "listening_from_kernel", "owners", "process_details"]

# linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_TCP_ESTABLISHED = 1
_TCP_CLOSE = 7  # an unconnected UDP socket is in this state
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
# struct inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid
_REQUEST = struct.Struct("=BBBxI48s")
# struct inet_diag_msg: family, state, timer, retrans, sockid (sport, dport big-endian,
# src and dst as four 32-bit words, interface, cookie), expires, rqueue, wqueue, uid, inode
_MESSAGE = struct.Struct("=BBBB2s2s16s16sI8sIIIII")

#: (transport, family, address, port, inode)
RawSocket = tuple[str, str, str, int, int]


def _dump(family: int, protocol: int, states: int) -> list[RawSocket]:
    transport = "tcp" if protocol == socket.IPPROTO_TCP else "udp"
    family_name = "ipv6" if family == socket.AF_INET6 else "ipv4"
    address_size = 16 if family == socket.AF_INET6 else 4
    request = _REQUEST.pack(family, protocol, 0, states, b"")
    header = _HEADER.pack(
        _HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0
    )
    found: list[RawSocket] = []
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    try:
        sock.settimeout(5.0)  # the kernel answers at once; never hang on a broken one
        sock.sendall(header + request)
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return found
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, _seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    return found  # malformed: stop rather than loop forever
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR:
                    (errno,) = struct.unpack_from("=i", data, offset + _HEADER.size)
                    raise OSError(-errno, os.strerror(-errno))
                if kind == _SOCK_DIAG_BY_FAMILY:
                    fields = _MESSAGE.unpack_from(data, offset + _HEADER.size)
                    sport, source, inode = fields[4], fields[6], fields[14]
                    address = socket.inet_ntop(family, source[:address_size])
                    found.append(
                        (transport, family_name, address, int.from_bytes(sport, "big"), inode)
                    )
                offset += (length + 3) & ~3  # NLMSG_ALIGN
    finally:
        sock.close()


def listening_from_kernel(transports: tuple[str, ...]) -> list[RawSocket]:
    """Listening TCP and unconnected UDP sockets, IPv4 and IPv6, as the kernel reports them.

    Raises:
        OSError: netlink sock_diag is not available (not Linux, or a kernel without it).
    """
    found: list[RawSocket] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        if "tcp" in transports:
            found += _dump(family, socket.IPPROTO_TCP, 1 << _TCP_LISTEN)
        if "udp" in transports:
            found += _dump(family, socket.IPPROTO_UDP, 1 << _TCP_CLOSE)
    return found


def owners(inodes: set[int]) -> dict[int, list[int]]:
    """The pids holding a descriptor on each of ``inodes`` (sockets are inodes on sockfs).

    Processes this user may not inspect are skipped. Every process is visited: a socket
    may be shared by several (a server's workers after fork), and all are reported.
    """
    found: dict[int, list[int]] = {}
    if not inodes:
        return found
    links = {f"socket:[{inode}]": inode for inode in inodes}
    inode_of, readlink, listdir = links.get, os.readlink, os.listdir
    for entry in listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # One link first, under the same access check as the descriptors' (ptrace's
            # read check, per process): refused, the process is not ours to inspect (one
            # of another user namespace refuses even root), so its descriptors are not
            # listed for nothing; absent, it is a kernel thread (two thirds of the
            # processes on a quiet machine) or has exited, and holds no descriptor.
            readlink(f"/proc/{entry}/exe")
            fd_dir = f"/proc/{entry}/fd"
            names = listdir(fd_dir)
            # Links read relative to the open directory: no path walk per descriptor.
            directory = os.open(fd_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        held: set[int] = set()
        try:
            for name in names:
                try:
                    inode = inode_of(readlink(name, dir_fd=directory))
                except OSError:  # closed since the listing
                    continue
                if inode is not None:
                    held.add(inode)
        finally:
            os.close(directory)
        for inode in held:
            found.setdefault(inode, []).append(int(entry))
    return found


def process_details(pid: int) -> tuple[str | None, str | None]:
    """(name, user) of ``pid`` from /proc; ``None`` for what cannot be read."""
    name: str | None = None
    user: str | None = None
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as file:
            name = file.read().rstrip("\n")
        if len(name) >= 15:
            # comm is cut at 15 characters; the program's path says the full name
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                first = file.read().split(b"\0", 1)[0].decode("utf-8", "replace")
            full = os.path.basename(first)
            if full.startswith(name):
                name = full
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])  # the real uid, as ps shows it
                    break
            else:
                return name, None
        import pwd

        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:  # a uid with no passwd entry (containers): show the number
            user = str(uid)
    except (OSError, ValueError, IndexError):
        pass  # it exited between the socket table and now; the pid is still the answer
    return name, user
