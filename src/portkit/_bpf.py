"""Classic BPF socket filters (``SO_ATTACH_FILTER``, Linux's socket(7)).

One place that packs a program for the kernel: the SYN scanner's raw sockets keep only
the replies they wait for, and a raw socket used only to send drops everything.
"""

from __future__ import annotations

import ctypes
import socket
import struct

__all__ = ["DROP_ALL", "Instruction", "attach_filter"]

SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; Python's socket module does not name it

#: One instruction: (code, jump if true, jump if false, k), as ``struct sock_filter``.
Instruction = tuple[int, int, int, int]

#: ``ret #0``: nothing passes.
DROP_ALL: tuple[Instruction, ...] = ((0x06, 0, 0, 0),)


def attach_filter(
    sock: socket.socket, program: tuple[Instruction, ...] | list[Instruction]
) -> None:
    """Attach ``program`` to ``sock`` (replacing any filter it had).

    Raises:
        OSError: the kernel refused the program.
    """
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }: the kernel
    # copies the program during setsockopt, so the buffer only has to live until then.
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
