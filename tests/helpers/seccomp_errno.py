#!/usr/bin/env python3
"""Runs a program with pidfd_open refused, as a container's seccomp
allow-list refuses it:
seccomp_errno.py [--errno NAME] [--ignore-sigchld] PROGRAM [ARGS...]

Installs a seccomp filter in this process (inherited across execve and by
every child) that answers pidfd_open (x86-64 syscall 434) with the errno
(EPERM unless --errno names another: EACCES, ENOSYS) and allows everything
else, checks that pidfd_open of itself now fails with that errno (exit 97
if not: a test run under it would pass vacuously), then execs PROGRAM.
Needs no privilege: PR_SET_NO_NEW_PRIVS comes first. --ignore-sigchld
sets SIGCHLD to SIG_IGN, which PROGRAM inherits across execve.
"""
import ctypes
import errno
import os
import platform
import signal
import sys

PR_SET_NO_NEW_PRIVS = 38
SYS_SECCOMP = 317
SYS_PIDFD_OPEN = 434
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
AUDIT_ARCH_X86_64 = 0xC000003E
# BPF opcodes
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K
# offsetof(struct seccomp_data, nr / arch)
OFF_NR = 0
OFF_ARCH = 4


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def main():
    args = sys.argv[1:]
    err = errno.EPERM
    if args[:1] == ["--errno"]:
        err = getattr(errno, args[1])
        args = args[2:]
    if args[:1] == ["--ignore-sigchld"]:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        args = args[1:]
    if not args:
        sys.exit("usage: seccomp_errno.py [--errno NAME] [--ignore-sigchld] PROGRAM [ARGS...]")
    if platform.machine() != "x86_64":
        sys.exit("seccomp_errno.py: only x86-64 is supported")
    prog = [
        SockFilter(LD_W_ABS, 0, 0, OFF_ARCH),
        # Another architecture's syscall numbers mean something else: allow.
        SockFilter(JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        SockFilter(LD_W_ABS, 0, 0, OFF_NR),
        SockFilter(JEQ_K, 0, 1, SYS_PIDFD_OPEN),
        SockFilter(RET_K, 0, 0, SECCOMP_RET_ERRNO | err),
        SockFilter(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    filters = (SockFilter * len(prog))(*prog)
    fprog = SockFprog(len(prog), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    if libc.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog)) != 0:
        sys.exit(f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(ctypes.get_errno())}")
    rc = libc.syscall(SYS_PIDFD_OPEN, os.getpid(), 0)
    got = ctypes.get_errno()
    if rc >= 0 or got != err:
        print(f"seccomp_errno.py: pidfd_open gave {rc} (errno {got}), not {err}", file=sys.stderr)
        sys.exit(97)
    os.execvp(args[0], args)


main()
