#!/usr/bin/env python3
"""A hostile vhost-user frontend for bench/soak.sh: one round of malformed messages and a malicious guest.

    hostile_frontend.py SOCKET [ROUNDS]

Each round opens several connections to SOCKET (a vswitch server-role port) and, on each:
  1. a header with a bad version                           -> the switch closes the connection
  2. a header declaring a payload larger than any message  -> closed
  3. refused messages, several carrying descriptors the switch must close: SET_MEM_TABLE with a pipe and with
     a memfd too small for its region, SET_VRING_CALL with a memfd, SET_VRING_KICK with two eventfds, an
     unknown request with a descriptor, GET_VRING_BASE of queue 7, SET_VRING_NUM 3, SET_FEATURES with bits
     never offered, ADD_MEM_REG without its descriptor, REM_MEM_REG of a region that is not there
  4. a valid set-up (memfd guest RAM, split rings of 256) and then, as a guest, on its TX queue: a runt frame
     (8 bytes behind the header: counted as drop_invalid), a chain no longer than the header (drop_invalid),
     then an avail.idx 1000 ahead (a queue fault on this port only), then a message cut in the middle by close
Prints one line per round: "hostile round N: invalid_sent=2 ..." (the frames the switch must count as
drop_invalid and never as rx). Exit code 1 when the switch did something unexpected (no reply, no close).
"""
import array
import mmap
import os
import socket
import struct
import sys
import time

VERSION = 0x1
NEED_REPLY = 0x8
REPLY = 0x4
GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE = 1, 2, 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
ADD_MEM_REG, REM_MEM_REG = 37, 38
VERSION_1 = 1 << 32
HEADER = 12          # virtio-net header with VERSION_1
QSIZE = 256
GPA = 0x100000
UVA = 0x7F00_0000_0000
RAM = 1 << 20


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def send(s, request, payload=b"", fds=(), flags=VERSION, size=None):
    header = struct.pack("<III", request, flags, len(payload) if size is None else size)
    if fds:
        s.sendmsg([header + payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        s.sendall(header + payload)


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError("closed by the switch")
        out += chunk
    return out


def reply(s, request):
    req, flags, size = struct.unpack("<III", recv_exact(s, 12))
    payload = recv_exact(s, size)
    if req != request or not flags & REPLY:
        raise RuntimeError(f"unexpected reply {req} flags {flags:#x} to {request}")
    return payload


def expect_closed(s, what):
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return
    except ConnectionResetError:
        return
    except socket.timeout:
        raise RuntimeError(f"the switch kept the connection open after {what}")
    finally:
        s.close()


def memfd(size):
    fd = os.memfd_create("vsoak-hostile", 0)
    os.ftruncate(fd, size)
    return fd


def region(gpa, size, uva, offset):
    return struct.pack("<QQQQ", gpa, size, uva, offset)


def ring_layout(q):
    base = q * 3 * 4096 * 2
    desc = base
    avail = desc + 16 * QSIZE
    avail = (avail + 4095) & ~4095
    used = avail + 4 + 2 * QSIZE + 2
    used = (used + 4095) & ~4095
    return desc, avail, used


def hostile_round(path):
    # 1, 2: framing errors close the connection
    s = connect(path)
    send(s, GET_FEATURES, flags=0x3)
    expect_closed(s, "a bad version")
    s = connect(path)
    send(s, GET_FEATURES, size=0x7FFFFFF0)
    expect_closed(s, "an oversized payload")

    # 3: refused messages, with descriptors the switch must not keep
    s = connect(path)
    r, w = os.pipe()
    small = memfd(4096)
    ev1, ev2 = os.eventfd(0), os.eventfd(0)
    try:
        send(s, SET_MEM_TABLE, struct.pack("<II", 1, 0) + region(GPA, RAM, UVA, 0), fds=[r])
        send(s, SET_MEM_TABLE, struct.pack("<II", 1, 0) + region(GPA, RAM, UVA, 0), fds=[small])
        send(s, SET_VRING_CALL, struct.pack("<Q", 0), fds=[small])
        send(s, SET_VRING_KICK, struct.pack("<Q", 1), fds=[ev1, ev2])
        send(s, 999, b"\0" * 8, fds=[ev1])
        send(s, SET_VRING_ERR, struct.pack("<Q", 0), fds=[w])
        send(s, GET_VRING_BASE, struct.pack("<II", 7, 0))
        reply(s, GET_VRING_BASE)
        send(s, SET_VRING_NUM, struct.pack("<II", 0, 3))
        send(s, SET_FEATURES, struct.pack("<Q", 1 << 63))
        send(s, ADD_MEM_REG, struct.pack("<Q", 0) + region(GPA, RAM, UVA, 0))
        send(s, REM_MEM_REG, struct.pack("<Q", 0) + region(GPA, RAM, UVA, 0))
        send(s, GET_FEATURES)
        reply(s, GET_FEATURES)
    finally:
        for fd in (r, w, small, ev1, ev2):
            os.close(fd)
        s.close()

    # 4: a valid device, then a malicious guest on it
    s = connect(path)
    ram_fd = memfd(RAM)
    ram = mmap.mmap(ram_fd, RAM)
    events = []
    try:
        send(s, GET_FEATURES)
        offered = struct.unpack("<Q", reply(s, GET_FEATURES))[0]
        if not offered & VERSION_1:
            raise RuntimeError("VERSION_1 not offered")
        send(s, SET_FEATURES, struct.pack("<Q", VERSION_1))
        send(s, SET_OWNER)
        send(s, SET_MEM_TABLE, struct.pack("<II", 1, 0) + region(GPA, RAM, UVA, 0), fds=[ram_fd])
        for q in (0, 1):
            desc, avail, used = ring_layout(q)
            send(s, SET_VRING_NUM, struct.pack("<II", q, QSIZE))
            send(s, SET_VRING_BASE, struct.pack("<II", q, 0))
            send(s, SET_VRING_ADDR, struct.pack("<IIQQQQ", q, 0, UVA + desc, UVA + used, UVA + avail, 0))
            for req in (SET_VRING_CALL, SET_VRING_ERR, SET_VRING_KICK):
                e = os.eventfd(0, os.EFD_NONBLOCK)
                events.append(e)
                send(s, req, struct.pack("<Q", q), fds=[e])
        send(s, GET_FEATURES)
        reply(s, GET_FEATURES)

        desc, avail, used = ring_layout(1)
        buf = 64 * 4096

        def publish(slot, head, d_addr, d_len):
            struct.pack_into("<QIHH", ram, desc + 16 * head, GPA + d_addr, d_len, 0, 0)
            struct.pack_into("<H", ram, avail + 4 + 2 * (slot % QSIZE), head)
            struct.pack_into("<H", ram, avail + 2, slot + 1)

        def wait_used(n):
            deadline = time.time() + 5
            while struct.unpack_from("<H", ram, used + 2)[0] != n:
                if time.time() > deadline:
                    raise RuntimeError(f"the switch did not return TX descriptor {n}")
                time.sleep(0.001)

        ram[buf:buf + HEADER + 8] = b"\0" * HEADER + b"runtrunt"
        publish(0, 0, buf, HEADER + 8)          # runt: 8 bytes of frame, no Ethernet header
        wait_used(1)
        publish(1, 1, buf, HEADER)              # nothing behind the header
        wait_used(2)
        struct.pack_into("<H", ram, avail + 2, 1002)   # avail.idx 1000 ahead: the queue faults
        time.sleep(0.05)
        send(s, GET_FEATURES)
        reply(s, GET_FEATURES)
        send(s, SET_MEM_TABLE, b"\0" * 10, size=40)   # and a message cut short by the close
    finally:
        s.close()
        ram.close()
        os.close(ram_fd)
        for e in events:
            os.close(e)
    return 2


def main():
    path = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for n in range(rounds):
        invalid = hostile_round(path)
        print(f"hostile round {n + 1}: invalid_sent={invalid}", flush=True)


if __name__ == "__main__":
    main()
