#!/usr/bin/env python3
"""libmay_http's WebSocket side against third-party clients: python3-websockets
(10.x, Debian's) for what a well-behaved client does, and frames written by
hand on a plain socket for what websockets refuses to send (bad frames,
invalid UTF-8, a message and a close in one write).

Usage: ws_clients.py PORT SERVER_PID [CASE...]   (no CASE: all of them)
The server (tests/ws/test_ws_clients.c) echoes every message, with
ws_max_message = 1 MiB and ws_max_queue = 1 MiB.  Exit 0 when every case
holds; each prints "ok CASE" (and its figures)."""
import asyncio
import base64
import hashlib
import os
import socket
import struct
import sys
import time

import websockets

PORT = int(sys.argv[1])
PID = int(sys.argv[2])
URI = "ws://127.0.0.1:%d/" % PORT
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 1 << 20
TIMEOUT = 20  # seconds for any one step (the server may run under valgrind)


# ---- raw frames ------------------------------------------------------------

def handshake(key=None, extra=b""):
    """A connected socket past a 101, and the bytes read after the head."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
    key = key or base64.b64encode(os.urandom(16))
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + key +
              b"\r\nSec-WebSocket-Version: 13\r\n\r\n" + extra)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        assert d, "EOF in the handshake: %r" % buf
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 101 "), lines[0]
    hdrs = {l.split(b":", 1)[0].strip().lower(): l.split(b":", 1)[1].strip() for l in lines[1:]}
    want = base64.b64encode(hashlib.sha1(key + GUID).digest())
    assert hdrs[b"sec-websocket-accept"] == want, hdrs
    assert hdrs[b"upgrade"].lower() == b"websocket", hdrs
    return s, rest


def frame(op, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """A client frame; length overrides the length field (a lie, or a form
    the encoder would not choose: ("16", n) or ("64", n))."""
    b0 = (0x80 if fin else 0) | rsv << 4 | op
    n = len(payload)
    if length is None:
        length = ("7", n) if n < 126 else ("16", n) if n < 65536 else ("64", n)
    form, n = length
    mbit = 0x80 if mask else 0
    if form == "7":
        h = struct.pack("!BB", b0, mbit | n)
    elif form == "16":
        h = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        h = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return h + payload
    key = os.urandom(4)
    return h + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class Reader:
    """Server frames from a socket (unmasked)."""

    def __init__(self, s, rest=b""):
        self.s, self.buf = s, rest

    def need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)  # ConnectionResetError: a reset, a failure
            assert d, "EOF inside a frame"
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        b0, b1 = self.need(2)
        assert b1 & 0x80 == 0, "a server frame is masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.need(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self.need(n)

    def eof(self):
        """The peer closed cleanly: EOF, not a reset."""
        assert self.buf == b"", self.buf
        d = self.s.recv(1)
        assert d == b"", "data after the close: %r" % d


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def expect_close(r, code, answer=True):
    """The next frame is a close with code; answer it and see a clean EOF."""
    fin, op, p = r.frame()
    assert op == 8, "want a close %d, got opcode %d %r" % (code, op, p[:40])
    got = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
    assert got == code, "close code %r, want %d" % (got, code)
    if answer:
        r.s.sendall(frame(8, p[:2]))
    r.eof()
    r.s.close()


def raw_case(data, code):
    """Send data after a handshake; the server answers close code."""
    s, rest = handshake()
    s.sendall(data)
    expect_close(Reader(s, rest), code)


# ---- the cases -------------------------------------------------------------

def case_handshake():
    # RFC 6455 1.3's example key
    s, _ = handshake(b"dGhlIHNhbXBsZSBub25jZQ==")
    s.close()
    base = [b"Host: x", b"Upgrade: websocket", b"Connection: Upgrade",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13"]

    def req(first=b"GET / HTTP/1.1", drop=(), add=()):
        lines = [l for l in base if not any(l.startswith(d) for d in drop)]
        return first + b"\r\n" + b"\r\n".join(lines + list(add)) + b"\r\n\r\n"

    bad = [
        ("HTTP/1.0", req(b"GET / HTTP/1.0")),
        ("POST", req(b"POST / HTTP/1.1", add=[b"Content-Length: 0"])),
        ("no Host", req(drop=[b"Host"])),
        ("no Upgrade", req(drop=[b"Upgrade"])),
        ("Upgrade: h2c", req(drop=[b"Upgrade"], add=[b"Upgrade: h2c"])),
        ("no Connection: Upgrade", req(drop=[b"Connection"], add=[b"Connection: keep-alive"])),
        ("no version", req(drop=[b"Sec-WebSocket-Version"])),
        ("version 8", req(drop=[b"Sec-WebSocket-Version"], add=[b"Sec-WebSocket-Version: 8"])),
        ("no key", req(drop=[b"Sec-WebSocket-Key"])),
        ("short key", req(drop=[b"Sec-WebSocket-Key"], add=[b"Sec-WebSocket-Key: dGhlIHNhbXBsZQ=="])),
        ("17-byte key", req(drop=[b"Sec-WebSocket-Key"], add=[b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg="])),
        ("not base64", req(drop=[b"Sec-WebSocket-Key"], add=[b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2*jZQ=="])),
        ("two keys", req(add=[b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="])),
    ]
    for what, data in bad:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
        s.sendall(data)
        got = b""
        while b"\r\n\r\n" not in got:
            d = s.recv(4096)
            assert d, "%s: EOF without an answer" % what
            got += d
        assert got.startswith(b"HTTP/1.1 400 "), "%s: %r" % (what, got[:60])
        if what in ("version 8", "no version"):  # RFC 6455 4.4: the version we speak
            assert b"\r\nSec-WebSocket-Version: 13\r\n" in got, got
        s.close()
    # a head over head_max gets a status (431), not a reset
    async def big_head():
        try:
            async with websockets.connect(URI, extra_headers={"X-Big": "a" * 100000},
                                          open_timeout=TIMEOUT):
                raise AssertionError("a 100 kB head was accepted")
        except websockets.exceptions.InvalidStatusCode as e:
            assert e.status_code == 431, e.status_code
    asyncio.run(big_head())


async def client(**kw):
    return await websockets.connect(URI, compression=None, open_timeout=TIMEOUT,
                                    close_timeout=TIMEOUT, max_size=4 * MAX_MESSAGE, **kw)


def case_echo():
    async def run():
        ws = await client()
        msgs = ["", "hello", "héllo wörld ✓ 🎉", "x" * 125, "y" * 126, "z" * 65536,
                b"", b"\x00\xff" * 1000, os.urandom(MAX_MESSAGE)]
        for m in msgs:
            await ws.send(m)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert got == m, (type(m), len(m), len(got))
        for m in msgs:  # all in flight at once: back in order
            await ws.send(m)
        for m in msgs:
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == m
        # fragmented messages are joined
        await ws.send(["ab", "", "cé", "d" * 70000])
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "abcé" + "d" * 70000
        await ws.send([b"", b"\x01", b"\x02\x03"])  # an empty first fragment
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\x01\x02\x03"
        # pings get pongs with their payload
        for payload in (b"", b"abc", os.urandom(125)):
            await asyncio.wait_for(await ws.ping(payload), TIMEOUT)
        # the close handshake: the server answers with our code and reason
        await ws.close(4000, "bye")
        assert ws.close_code == 4000, ws.close_code
        assert ws.close_reason == "bye", ws.close_reason
        ws = await client()
        await ws.close()
        assert ws.close_code == 1000, ws.close_code
    asyncio.run(run())


def case_batch():
    """A message and a close in one write: the echo comes before the close."""
    s, rest = handshake()
    s.sendall(frame(1, b"hello") + frame(8, close_payload(1000, b"x")))
    r = Reader(s, rest)
    assert r.frame() == (True, 1, b"hello")
    fin, op, p = r.frame()
    assert (op, p) == (8, close_payload(1000, b"x")), (op, p)
    r.eof()
    s.close()
    # a ping and a close: the pong first
    s, rest = handshake()
    s.sendall(frame(9, b"p1") + frame(8, close_payload(1001)))
    r = Reader(s, rest)
    assert r.frame() == (True, 10, b"p1")
    assert r.frame() == (True, 8, close_payload(1001))
    r.eof()
    s.close()
    # many messages, a ping and a close in one write, frames sent together
    # with the handshake (they arrive in the upgrade request's read)
    msgs = [b"m%d" % i * i for i in range(200)]
    data = b"".join(frame(2, m) for m in msgs) + frame(9, b"p") + frame(8)
    s, rest = handshake(extra=data)
    r = Reader(s, rest)
    for m in msgs:
        assert r.frame() == (True, 2, m)
    assert r.frame() == (True, 10, b"p")
    assert r.frame() == (True, 8, b"")  # an empty close is answered empty
    r.eof()
    s.close()


def case_too_big():
    async def send_big(data):
        ws = await client()
        await ws.send(data)
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            raise AssertionError("a message over ws_max_message was echoed")
        except websockets.exceptions.ConnectionClosedError as e:
            assert e.rcvd is not None and e.rcvd.code == 1009, e
    asyncio.run(send_big(os.urandom(2 * MAX_MESSAGE)))
    asyncio.run(send_big([os.urandom(MAX_MESSAGE // 4) for i in range(5)]))  # fragments
    asyncio.run(send_big("é" * MAX_MESSAGE))
    # raw: the close comes at the header; the 3 MiB still arrive after it
    s, rest = handshake()
    s.sendall(frame(2, os.urandom(3 * MAX_MESSAGE)))
    expect_close(Reader(s, rest), 1009)


def case_protocol():
    bad = [
        ("ping of 126 bytes", frame(9, b"p" * 126)),
        ("fragmented ping", frame(9, b"p", fin=False) + frame(0, b"q")),
        ("1-byte close", frame(8, b"\x03")),
        ("64-bit length, top bit", frame(2, b"", length=("64", 1 << 63))),
        ("64-bit length for 200 bytes", frame(2, b"a" * 200, length=("64", 200))),
        ("16-bit length for 5 bytes", frame(2, b"a" * 5, length=("16", 5))),
        ("unmasked", frame(1, b"hi", mask=False)),
        ("rsv1", frame(1, b"hi", rsv=4)),
        ("opcode 3", frame(3, b"hi")),
        ("opcode 11", frame(11, b"")),
        ("continuation first", frame(0, b"hi")),
        ("text inside a fragmented text", frame(1, b"a", fin=False) + frame(1, b"b")),
        ("close code 999", frame(8, close_payload(999))),
        ("close code 1005", frame(8, close_payload(1005))),
        ("close code 2000", frame(8, close_payload(2000))),
        ("close code 5000", frame(8, close_payload(5000))),
    ]
    for what, data in bad:
        try:
            raw_case(data, 1002)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e))
    # fine after bad ones: control frames between fragments
    s, rest = handshake()
    s.sendall(frame(1, b"ab", fin=False) + frame(9, b"x") + frame(0, b"cd", fin=False) +
              frame(10, b"y") + frame(0, b"e"))
    r = Reader(s, rest)
    assert r.frame() == (True, 10, b"x")
    assert r.frame() == (True, 1, b"abcde")
    s.sendall(frame(8, close_payload(3000, b"done")))
    assert r.frame() == (True, 8, close_payload(3000, b"done"))
    r.eof()
    s.close()


def case_utf8():
    bad = [
        ("0xff", frame(1, b"a\xffb")),
        ("overlong", frame(1, b"\xc0\xaf")),
        ("surrogate", frame(1, b"\xed\xa0\x80")),
        ("past U+10FFFF", frame(1, b"\xf4\x90\x80\x80")),
        ("truncated", frame(1, b"ab\xe2\x82")),
        ("bad across fragments", frame(1, b"ab\xe2", fin=False) + frame(0, b"\x28\xa1")),
        ("close reason", frame(8, close_payload(1000, b"\xff"))),
    ]
    for what, data in bad:
        try:
            raw_case(data, 1007)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e))
    # a character split between fragments is fine
    s, rest = handshake()
    euro = "€🎉".encode()
    s.sendall(frame(1, euro[:2], fin=False) + frame(0, euro[2:5], fin=False) + frame(0, euro[5:]))
    r = Reader(s, rest)
    assert r.frame() == (True, 1, euro)
    s.sendall(frame(8, close_payload(1000)))
    assert r.frame()[1] == 8
    r.eof()
    s.close()


def rss_kib():
    with open("/proc/%d/status" % PID) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def case_pressure():
    """A client that sends and never reads: the server stops reading (its
    memory and what the client manages to send stay bounded)."""
    async def flood(size, seconds):
        # max_queue=1: websockets itself stops reading after one message
        ws = await client(max_queue=1, write_limit=1 << 16)
        await ws.send(b"warm-up")
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        msg = os.urandom(size)
        base = peak = rss_kib()
        sent = 0

        async def sender():
            nonlocal sent
            while True:
                await ws.send(msg)  # waits while the server does not read
                sent += size
        task = asyncio.create_task(sender())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.02)
            peak = max(peak, rss_kib())
        task.cancel()
        ws.transport.abort()
        return sent, base, peak

    for size, seconds in ((1 << 20, 2.0), (1000, 1.0)):
        sent, base, peak = asyncio.run(flood(size, seconds))
        print("pressure %7d-byte messages: sent %.1f MiB in %.0f s, server RSS %d -> %d KiB" %
              (size, sent / 2**20, seconds, base, peak))
        # without back-pressure the old example took 290 MiB more in 1.6 s
        assert peak - base < 48 * 1024, (base, peak)
        assert sent < 64 << 20, sent


CASES = ["handshake", "echo", "batch", "too_big", "protocol", "utf8", "pressure"]
for name in sys.argv[3:] or CASES:
    t = time.monotonic()
    globals()["case_" + name]()
    print("ok %s (%.2f s)" % (name, time.monotonic() - t))
    sys.stdout.flush()
