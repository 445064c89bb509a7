#!/usr/bin/env python3
"""libmay_http against python3's http.client (a third-party client):
keep-alive reuse, a chunked upload, HEAD, a large response body, and the
Date and Server headers.  Usage: py_client.py PORT; exit 0 when all hold."""
import http.client
import sys

port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

c.request("GET", "/plaintext")
r = c.getresponse()
assert r.status == 200, r.status
assert r.read() == b"Hello, World!"
assert r.getheader("Server") == "may"
assert r.getheader("Date", "").endswith(" GMT")
sock = c.sock

for i in range(5):  # the same connection each time
    c.request("GET", "/plaintext")
    r = c.getresponse()
    assert r.read() == b"Hello, World!"
    assert c.sock is sock, "connection not reused"

def chunks():
    for i in range(10):
        yield (b"%d" % i) * 1000

c.request("POST", "/echo", body=chunks(), encode_chunked=True,
          headers={"Transfer-Encoding": "chunked"})
r = c.getresponse()
body = r.read()
assert r.status == 200, r.status
assert body == b"".join(chunks()), len(body)
assert c.sock is sock

c.request("HEAD", "/plaintext")
r = c.getresponse()
assert r.getheader("Content-Length") == "13"
assert r.read() == b""

c.request("GET", "/big")
r = c.getresponse()
body = r.read()
assert len(body) == 1 << 20 and body == b"x" * (1 << 20), len(body)
assert c.sock is sock
print("py_client: ok")
