#!/usr/bin/env python3
"""Deterministic HTTP load for bench/http_cg.sh: CONNS connections, each
ROUNDS rounds of DEPTH pipelined GET /plaintext (DEPTH 1: keep-alive, one
request at a time), every response read before the next round.
Usage: pipeline_client.py PORT CONNS ROUNDS DEPTH; prints the request count."""
import socket
import sys
import threading

port, conns, rounds, depth = (int(a) for a in sys.argv[1:5])
req = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: cg\r\n\r\n" * depth
done = []


def one():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    for _ in range(rounds):
        s.sendall(req)
        want = depth
        while want:
            while b"Hello, World!" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit("server closed")
                buf += chunk
            i = buf.index(b"Hello, World!") + 13
            buf = buf[i:]
            want -= 1
    s.close()
    done.append(rounds * depth)


ts = [threading.Thread(target=one) for _ in range(conns)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(sum(done))
