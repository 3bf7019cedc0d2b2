"""Send raw IPv4 packets in batches from a process of their own.

On a near host, the kernel's work for a SYN probe (routing, the target's RST or
SYN-ACK, the copy to the receiving socket) is most of the cost of a SYN scan, and it
runs in the context of whoever sends. :class:`BatchSender` forks a small sender
process that hands whole batches to ``sendmmsg(2)`` (one system call per batch,
through ctypes), so the kernel sends on one core while the scanning process builds
the next batch and reads replies on another. A process rather than a thread: a
thread would need the GIL between two batches, and the scanning process holds it
most of the time.

The batches live in shared memory (an anonymous ``MAP_SHARED`` mapping made before
the fork, so every pointer in it is valid in both processes). Two pipes carry the
control: the scanner writes "send batch b, n packets", the sender answers with what
became of it (:class:`Sent`). At most ``depth`` batches exist, so memory is bounded,
and a probe's timeout starts from the report, when its batch has left.

Where ``sendmmsg`` is not in the C library, the sender falls back to one ``sendto``
per packet. Packets are whole IPv4 datagrams (IP header included) sent on an
``IPPROTO_RAW`` socket, which never receives, so no copy of every reply is queued
for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from portkit._bpf import DROP_ALL, attach_filter
from portkit._inherited import silence_inherited

__all__ = [
    "PACKET_SIZE",
    "Batch",
    "BatchReceiver",
    "BatchSender",
    "Sent",
    "ipv4_header",
    "sockaddr_in",
    "sockaddr_in6",
]

PACKET_SIZE = 40  # IPv4 header without options (20) + TCP header without options (20)
_RETRYABLE = (errno.ENOBUFS, errno.EAGAIN)
_UNREACHABLE = (errno.EHOSTUNREACH, errno.ENETUNREACH)
_FULL_WAIT = 0.0005  # seconds to wait when the kernel's queue is full
_FULL_TRIES = 200  # then give up on the rest of the batch (its probes time out, re-sent)
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_JOB = struct.Struct("=HHH")  # batch index, packet count, IPv6 (1) or IPv4 (0)
# batch index, unsent from (-1: all sent), errno (0: none), unreachable slots, time sent
_REPORT = struct.Struct("=HiiHd")
_SLOT = struct.Struct("=H")
_NAME_SIZE = 28  # room for a struct sockaddr_in6 (a sockaddr_in takes the first 16)
_NAME_SIZE4 = 16
_TCP_SIZE = 20  # an IPv6 slot holds the TCP segment only: the kernel adds the header


def ipv4_header(src: bytes, dst: bytes) -> bytes:
    """An IPv4 header (RFC 791 section 3.1) for a 40-byte TCP segment from src to dst.

    With ``IP_HDRINCL`` the kernel fills in the header checksum, and the
    identification when it is zero (raw(7)).
    """
    return _IPV4.pack(0x45, 0, PACKET_SIZE, 0, 0, 64, socket.IPPROTO_TCP, 0, src, dst)


def sockaddr_in6(address: str) -> bytes:
    """The ``struct sockaddr_in6`` of an IPv6 address, port 0 (raw sockets ignore it)."""
    # sin6_family in host order; port, flow information, address, scope id.
    return (
        struct.pack("=H", socket.AF_INET6)
        + bytes(6)
        + socket.inet_pton(socket.AF_INET6, address)
        + bytes(4)
    )


def sockaddr_in(address: str) -> bytes:
    """The ``struct sockaddr_in`` of an IPv4 address, port 0 (raw sockets ignore it)."""
    # sin_family in host order; sin_port and sin_addr in network order; 8 zero bytes.
    return struct.pack("=H", socket.AF_INET) + b"\0\0" + socket.inet_aton(address) + bytes(8)


def _ipv6_sending_socket() -> socket.socket | None:
    """A raw IPv6 TCP socket that only sends (None where there is no IPv6).

    Unlike ``IPPROTO_RAW`` on IPv4, a raw IPv6 TCP socket also receives a copy of
    every TCP segment; a filter that accepts nothing keeps them all in the kernel.
    """
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return None
        raise
    attach_filter(sock, DROP_ALL)
    return sock


# struct iovec and struct mmsghdr as <sys/uio.h> and <sys/socket.h> define them; ctypes
# lays out the padding for this machine.
class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("length", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("hdr", _Msghdr), ("length", ctypes.c_uint))


_MMSG_SIZE = ctypes.sizeof(_Mmsghdr)
_IOV_SIZE = ctypes.sizeof(_Iovec)
_SendMmsg = Callable[[int, int, int, int], int]


_RecvMmsg = Callable[[int, int, int, int, None], int]


def _load_sendmmsg() -> _SendMmsg | None:
    """libc's ``sendmmsg``, or None where there is none (then: one sendto per packet)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sendmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    function.restype = ctypes.c_int
    send: _SendMmsg = function
    return send


def _load_recvmmsg() -> _RecvMmsg | None:
    """libc's ``recvmmsg``, or None where there is none (then: one recv per packet)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).recvmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    function.restype = ctypes.c_int
    receive: _RecvMmsg = function
    return receive


class BatchReceiver:
    """Read up to ``count`` datagrams per system call (``recvmmsg(2)``) from a socket.

    Datagram ``i`` of the last :meth:`read` starts at ``i * stride`` in ``view``; longer
    ones are cut at ``stride`` bytes (enough for the headers a scan reads). With
    ``ipv6_sources`` (a raw IPv6 socket: the segment comes without the IP header), the
    16 bytes of datagram ``i``'s source address are at ``i * 16`` in ``sources``. Where
    ``recvmmsg`` is missing, :meth:`read` makes one call per datagram instead: same
    results, more calls.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        count: int = 256,
        stride: int = 128,
        use_recvmmsg: bool = True,
        ipv6_sources: bool = False,
    ) -> None:
        self._sock = sock
        self.count = count
        self.stride = stride
        self._memory = ctypes.create_string_buffer(count * stride)
        self.view = memoryview(self._memory).cast("B")
        self._recvmmsg = _load_recvmmsg() if use_recvmmsg else None
        self._iovs = (_Iovec * count)()
        self._msgs = (_Mmsghdr * count)()
        base = ctypes.addressof(self._memory)
        for i in range(count):
            self._iovs[i].base = base + i * stride
            self._iovs[i].length = stride
            self._msgs[i].hdr.iov = ctypes.addressof(self._iovs[i])
            self._msgs[i].hdr.iovlen = 1
        self._address = ctypes.addressof(self._msgs)
        self._ipv6 = ipv6_sources
        self._names = ctypes.create_string_buffer(count * _NAME_SIZE if ipv6_sources else 0)
        self._sources = bytearray(16 * count if ipv6_sources else 0)
        self.sources = memoryview(self._sources)
        if ipv6_sources:
            names = ctypes.addressof(self._names)
            for i in range(count):
                self._msgs[i].hdr.name = names + i * _NAME_SIZE
                self._msgs[i].hdr.namelen = _NAME_SIZE

    @property
    def batched(self) -> bool:
        """Whether reads use ``recvmmsg`` (else one ``recv_into`` per datagram)."""
        return self._recvmmsg is not None

    def read(self) -> int:
        """Read what is waiting, up to ``count`` datagrams; return how many (0: none)."""
        fd = self._sock.fileno()
        if self._recvmmsg is not None:
            while True:
                got = self._recvmmsg(fd, self._address, self.count, socket.MSG_DONTWAIT, None)
                if got >= 0:
                    if self._ipv6 and got:
                        # sin6_addr: bytes 8-23 of each struct sockaddr_in6 (RFC 3493 3.3).
                        raw = self._names.raw
                        sources = self._sources
                        for i in range(got):
                            at = i * _NAME_SIZE
                            sources[16 * i : 16 * i + 16] = raw[at + 8 : at + 24]
                    return got
                code = ctypes.get_errno()
                if code in _RETRYABLE:
                    return 0
                if code != errno.EINTR:
                    raise OSError(code, os.strerror(code))
        got = 0
        recv_into = self._sock.recv_into
        recvfrom_into = self._sock.recvfrom_into
        view, stride = self.view, self.stride
        while got < self.count:
            slot = view[got * stride : (got + 1) * stride]
            try:
                if self._ipv6:
                    _size, source = recvfrom_into(slot, stride, socket.MSG_DONTWAIT)
                    address = source[0].partition("%")[0]
                    self._sources[16 * got : 16 * got + 16] = socket.inet_pton(
                        socket.AF_INET6, address
                    )
                else:
                    recv_into(slot, stride, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            got += 1
        return got

    def close(self) -> None:
        """Drop the buffer views (the socket is the caller's)."""
        self.view.release()
        self.sources.release()


def batch_bytes(size: int) -> int:
    """Shared memory one batch of ``size`` packets takes."""
    return size * (_MMSG_SIZE + _IOV_SIZE + _NAME_SIZE + PACKET_SIZE)


def _current_cpu() -> int | None:
    """The core this thread runs on now (proc(5): field 39 of /proc/thread-self/stat)."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[36])  # fields after the command name start at field 3
    except (OSError, IndexError, ValueError):
        return None


def _split_cores() -> tuple[set[int], set[int], set[int]] | None:
    """(cores allowed now, the scanner's core, the sender's cores), or None: no split.

    The two processes talk through pipes, and the scheduler likes to keep a process
    that wakes another on the same core (it assumes they share data): then the
    kernel's sending and the scanner's Python take turns on one core instead of
    running side by side. Measured: a sweep took 0.8 s instead of 0.45 s about every
    other run. So while the sender runs, each keeps to its own core(s).

    Only on a machine with a core to spare: where other tasks already want every
    core but this one, a process kept to one core waits for it while another core
    frees up. Measured over a veth link under a load average of 6, a one-port SYN
    scan took 0.37 s (median of 8) with the split and 0.29 s without.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    here = _current_cpu()
    if len(allowed) < 2 or here is None or here not in allowed:
        return None
    if _runnable_elsewhere() >= len(allowed) - 1:
        return None
    return allowed, {here}, allowed - {here}


def _runnable_elsewhere() -> int:
    """How many other tasks want a core right now.

    The kernel's count of runnable tasks at this moment (proc(5): the fourth field of
    /proc/loadavg), less this one; not the one-minute load average, which still
    counts a busy minute that has just ended (a previous scan, say).
    """
    try:
        with open("/proc/loadavg", encoding="ascii") as stat:
            runnable = int(stat.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return 0
    return max(0, runnable - 1)


class Batch:
    """Room for ``size`` packets, their destinations and the headers sendmmsg reads.

    Laid out in ``memory`` (shared with the sender) from ``offset``: the mmsghdr array,
    the iovec array, one sockaddr per slot, then the packets. ``view`` is writable
    (``struct.pack_into``): packet ``i`` is at ``packet_offset + i * PACKET_SIZE``.
    """

    def __init__(self, index: int, memory: mmap.mmap, offset: int, size: int) -> None:
        self.index = index
        self.size = size
        self.view = memoryview(memory)[offset : offset + batch_bytes(size)]
        self.msgs = (_Mmsghdr * size).from_buffer(memory, offset)
        iov_offset = offset + size * _MMSG_SIZE
        self.name_offset = size * (_MMSG_SIZE + _IOV_SIZE)
        self.packet_offset = self.name_offset + size * _NAME_SIZE
        self._iovs = iovs = (_Iovec * size).from_buffer(memory, iov_offset)
        base = ctypes.addressof(self.msgs)
        for i in range(size):
            iovs[i].base = base + self.packet_offset + i * PACKET_SIZE
            iovs[i].length = PACKET_SIZE
            self.msgs[i].hdr.iov = ctypes.addressof(iovs[i])
            self.msgs[i].hdr.iovlen = 1
            self.msgs[i].hdr.name = base + self.name_offset + i * _NAME_SIZE
            self.msgs[i].hdr.namelen = _NAME_SIZE4
        self.ipv6 = False
        self.destinations: list[str | None] = [None] * size  # per slot (the scanner's copy)
        self.tag: object = None

    def set_ipv6(self, ipv6: bool) -> None:
        """Hold IPv4 datagrams (header and TCP, 40 bytes) or IPv6 TCP segments (20)."""
        if ipv6 == self.ipv6:
            return
        self.ipv6 = ipv6
        length, namelen = (_TCP_SIZE, _NAME_SIZE) if ipv6 else (PACKET_SIZE, _NAME_SIZE4)
        for i in range(self.size):
            self._iovs[i].length = length
            self.msgs[i].hdr.namelen = namelen
        self.destinations = [None] * self.size

    def set_destination(self, slot: int, address: str, name: bytes) -> None:
        """Point ``slot`` at ``address`` (``name``: its :func:`sockaddr_in` or ``_in6``)."""
        self.destinations[slot] = address
        start = self.name_offset + slot * _NAME_SIZE
        self.view[start : start + len(name)] = name

    def address(self) -> int:
        """Where the mmsghdr array starts."""
        return ctypes.addressof(self.msgs)

    def release(self) -> None:
        """Drop the views into the shared memory (before it is closed)."""
        self.view.release()
        del self.msgs
        del self._iovs


@dataclass(slots=True)
class Sent:
    """What became of one submitted batch."""

    batch: Batch
    tag: object
    at: float  # time.monotonic() when its last packet left
    unsent_from: int | None = None  # packets from here on were not sent (queue full)
    unreachable: list[int] = field(default_factory=list)  # slots the kernel refused
    error: OSError | None = None  # anything else: the scan cannot go on


class BatchSender:
    """A forked process that sends :class:`Batch` objects on an ``IPPROTO_RAW`` socket.

    ``reports`` is the descriptor to watch (readable when a batch has left); then call
    :meth:`finished`. Always :meth:`close` it.
    """

    def __init__(self, *, batch_size: int = 256, depth: int = 4, use_sendmmsg: bool = True) -> None:
        depth = max(2, depth)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._sock6 = _ipv6_sending_socket()
        self._sendmmsg = _load_sendmmsg() if use_sendmmsg else None
        self._memory = mmap.mmap(-1, depth * batch_bytes(batch_size))  # MAP_SHARED
        self._batches = [
            Batch(i, self._memory, i * batch_bytes(batch_size), batch_size) for i in range(depth)
        ]
        self._free: deque[Batch] = deque(self._batches)
        self._tags: dict[int, object] = {}
        self._here: list[Sent] = []  # reports of batches sent by send_here
        self._buffer = bytearray()
        jobs_read, self._jobs = os.pipe()
        self.reports, reports_write = os.pipe()
        self._affinity = _split_cores()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover - runs in the sender process
            os.close(self._jobs)
            os.close(self.reports)
            if self._affinity is not None:
                os.sched_setaffinity(0, self._affinity[2])
            self._child(jobs_read, reports_write)
        os.close(jobs_read)
        os.close(reports_write)
        os.set_blocking(self.reports, False)
        if self._affinity is not None:
            os.sched_setaffinity(0, self._affinity[1])

    @property
    def batched(self) -> bool:
        """Whether batches go out with ``sendmmsg`` (else one ``sendto`` per packet)."""
        return self._sendmmsg is not None

    def take(self) -> Batch | None:
        """A free batch to fill, or None while all are with the sender."""
        return self._free.popleft() if self._free else None

    def give_back(self, batch: Batch) -> None:
        """Return a batch taken with :meth:`take` but not submitted."""
        self._free.appendleft(batch)

    def submit(self, batch: Batch, count: int, tag: object) -> None:
        """Send the first ``count`` packets of ``batch``; ``tag`` comes back in :class:`Sent`."""
        self._tags[batch.index] = tag
        # 6 bytes: atomic on a pipe.
        os.write(self._jobs, _JOB.pack(batch.index, count, batch.ipv6))

    def send_here(self, batch: Batch, count: int, tag: object) -> None:
        """Send the first ``count`` packets of ``batch`` from this process, now.

        Its report comes with the next :meth:`finished`, as the sender's do. The
        kernel's work for these packets then runs on this process's core: with two
        cores, sending a share of the batches here splits that work between both.
        """
        unsent, code, unreachable = self._send(batch, count, batch.ipv6)
        self._free.append(batch)
        self._here.append(
            Sent(
                batch=batch,
                tag=tag,
                at=time.monotonic(),
                unsent_from=None if unsent < 0 else unsent,
                unreachable=unreachable,
                error=OSError(code, os.strerror(code)) if code else None,
            )
        )

    def finished(self) -> list[Sent]:
        """Reports of the batches sent since the last call (their batches are free again)."""
        while True:
            try:
                chunk = os.read(self.reports, 65536)
            except BlockingIOError:
                break
            if not chunk:
                if self._tags:
                    raise OSError(errno.EPIPE, "the packet sender stopped")
                break
            self._buffer += chunk
        reports, self._here = self._here, []
        buffer = self._buffer
        while len(buffer) >= _REPORT.size:
            index, unsent, code, unreachable, at = _REPORT.unpack_from(buffer)
            end = _REPORT.size + unreachable * _SLOT.size
            if len(buffer) < end:
                break
            slots = [s for (s,) in _SLOT.iter_unpack(buffer[_REPORT.size : end])]
            del buffer[:end]
            batch = self._batches[index]
            self._free.append(batch)
            reports.append(
                Sent(
                    batch=batch,
                    tag=self._tags.pop(index),
                    at=at,
                    unsent_from=None if unsent < 0 else unsent,
                    unreachable=slots,
                    error=OSError(code, os.strerror(code)) if code else None,
                )
            )
        return reports

    def close(self) -> None:
        """Stop the sender process and free the shared memory."""
        if self._affinity is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self._affinity[0])
            self._affinity = None
        os.close(self._jobs)  # the sender's end of file: it exits
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)  # and at once, if it was still sending
        os.waitpid(self._pid, 0)
        os.close(self.reports)
        self._sock.close()
        if self._sock6 is not None:
            self._sock6.close()
        for batch in self._batches:
            batch.release()
        self._memory.close()

    # The sender process.

    def _child(self, jobs: int, reports: int) -> None:  # pragma: no cover - in the sender
        code = 0
        try:
            # Its pipes and raw socket only: the scanner's loop and sockets are not ours.
            keep = [jobs, reports, self._sock.fileno()]
            if self._sock6 is not None:
                keep.append(self._sock6.fileno())
            silence_inherited(*keep)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scanner decides when to stop
            signal.set_wakeup_fd(-1)  # the scanner's event loop is not ours
            pending = b""
            while True:
                data = os.read(jobs, 4096)
                if not data:
                    break
                pending += data
                while len(pending) >= _JOB.size:
                    index, count, ipv6 = _JOB.unpack_from(pending)
                    pending = pending[_JOB.size :]
                    unsent, error, unreachable = self._send(self._batches[index], count, ipv6)
                    out = _REPORT.pack(index, unsent, error, len(unreachable), time.monotonic())
                    out += b"".join(_SLOT.pack(s) for s in unreachable)
                    os.write(reports, out)
        except BaseException:
            code = 1
        finally:
            os._exit(code)

    def _send(self, batch: Batch, count: int, ipv6: int) -> tuple[int, int, list[int]]:
        """Send ``count`` packets: (unsent from or -1, errno or 0, unreachable slots)."""
        sent, full = 0, 0
        sock = self._sock6 if ipv6 else self._sock
        if sock is None:
            return 0, errno.EAFNOSUPPORT, []
        fd = sock.fileno()
        sendmmsg = self._sendmmsg
        unreachable: list[int] = []
        while sent < count:
            if sendmmsg is not None:
                # One call for the rest of the batch; it returns how many left.
                result = sendmmsg(fd, batch.address() + sent * _MMSG_SIZE, count - sent, 0)
                if result >= 0:
                    sent, full = sent + result, 0
                    continue
                code = ctypes.get_errno()
            else:
                start = batch.packet_offset + sent * PACKET_SIZE
                name = batch.name_offset + sent * _NAME_SIZE
                if ipv6:
                    size = _TCP_SIZE
                    destination = socket.inet_ntop(
                        socket.AF_INET6, batch.view[name + 8 : name + 24]
                    )
                else:
                    size = PACKET_SIZE
                    destination = socket.inet_ntoa(batch.view[name + 4 : name + 8])
                try:
                    sock.sendto(batch.view[start : start + size], (destination, 0))
                except OSError as exc:
                    code = exc.errno or errno.EIO
                else:
                    sent, full = sent + 1, 0
                    continue
            if code == errno.EINTR:
                continue
            if code in _RETRYABLE:
                full += 1
                if full > _FULL_TRIES:
                    return sent, 0, unreachable
                time.sleep(_FULL_WAIT)
                continue
            if code in _UNREACHABLE:
                unreachable.append(sent)
                sent += 1
                continue
            return sent, code, unreachable
        return -1, 0, unreachable
