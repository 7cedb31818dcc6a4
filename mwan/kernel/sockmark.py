"""A cgroup BPF program that gives every new socket of a cgroup a fixed SO_MARK.

This is how ``mwan3 use IFACE CMD`` steers CMD: its cgroup carries a
``BPF_CGROUP_INET_SOCK_CREATE`` program that sets the socket's mark to the
interface's mark as the socket is made, so the kernel routes its very first
lookup (and picks its source address) in the interface's table, exactly as
if CMD had called ``setsockopt(SO_MARK)`` itself.  mwan's output chain
leaves packets that already carry a mark alone.

The program is four instructions; no BPF toolchain is needed to build it, and
the ``bpf(2)`` system call is made through ctypes (Python has no binding in
the standard library, and pyroute2 loads no cgroup programs).  An attachment
stays with the cgroup after this process exits and goes with the cgroup when
it is removed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_SOCK = 9
BPF_CGROUP_INET_SOCK_CREATE = 2
BPF_SOCK_MARK_OFFSET = 16  # offsetof(struct bpf_sock, mark)
SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "i686": 357, "riscv64": 280,
           "ppc64le": 361, "s390x": 351, "mips": 4355}
ATTR_SIZE = 128


class SockMarkError(OSError):
    pass


def _insn(code: int, dst: int, src: int, off: int, imm: int) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(mark: int) -> bytes:
    """r2 = mark; ctx->mark = r2; return 1 (allow the socket)."""
    if not 0 <= mark < 2**31:
        raise ValueError(f"mark {mark:#x} out of range")
    return (_insn(0xB7, 2, 0, 0, mark)  # BPF_ALU64 | BPF_MOV | BPF_K
            + _insn(0x63, 1, 2, BPF_SOCK_MARK_OFFSET, 0)  # BPF_STX | BPF_MEM | BPF_W
            + _insn(0xB7, 0, 0, 0, 1)
            + _insn(0x95, 0, 0, 0, 0))  # BPF_JMP | BPF_EXIT


def _bpf(cmd: int, attr: bytes) -> int:
    nr = SYS_BPF.get(platform.machine())
    if nr is None:
        raise SockMarkError(0, f"bpf(2) number unknown on {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr.ljust(ATTR_SIZE, b"\0"), ATTR_SIZE)
    ret = int(libc.syscall(nr, cmd, buf, ATTR_SIZE))
    if ret < 0:
        err = ctypes.get_errno()
        raise SockMarkError(err, os.strerror(err))
    return ret


def load(mark: int) -> int:
    """Load the program for ``mark``; returns its fd (the caller closes it)."""
    code = program(mark)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(4096)
    attr = struct.pack("<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_SOCK, len(code) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log),
                       ctypes.addressof(log), 0, 0, b"mwan_use", 0, BPF_CGROUP_INET_SOCK_CREATE)
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except SockMarkError as exc:
        detail = log.value.decode(errors="replace").strip()
        raise SockMarkError(exc.errno, f"cannot load the socket-mark program: {exc.strerror}"
                            + (f" ({detail})" if detail else "")) from None


def attach(cgroup_dir: str, mark: int) -> None:
    """Give every socket created in ``cgroup_dir`` (a cgroup2 directory) the mark ``mark``.

    Attaching again replaces the program, so a new mark takes effect at once.
    """
    prog = load(mark)
    try:
        cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIII", cg, prog, BPF_CGROUP_INET_SOCK_CREATE, 0))
        except SockMarkError as exc:
            raise SockMarkError(exc.errno, f"cannot attach to {cgroup_dir}: {exc.strerror}") \
                from None
        finally:
            os.close(cg)
    finally:
        os.close(prog)
