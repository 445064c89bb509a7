#!/usr/bin/env python3
"""tests/techempower/test_http.py TECHEMPOWER_BINARY

Every endpoint of apps/techempower checked against TechEmpower's
specification (Project-Information-Framework-Tests-Overview) and its
verifier's rules (toolset/test_types/verifications.py, fortune_html_parser.py),
against the real PostgreSQL that apps/techempower/with_db.sh started and
loaded; the database itself (psql) is the witness for values.

  - headers of every response: Server, Date (RFC 7231 format, not frozen:
    two requests 2 s apart differ), Content-Type as the verifier's
    regular expressions want, Content-Length equal to the body's length;
  - /plaintext, /json: exact bodies; /json is an object with one key;
  - /db, /queries: JSON shape (objects with exactly id and randomNumber),
    ranges (1..10000), and every row equal to the table's;
  - /queries and /updates clamping: queries= 2, 0, -1, foo, 501, empty,
    missing, 20 give 2, 1, 1, 1, 500, 1, 1, 20 rows;
  - /fortunes: the exact HTML (TechEmpower's template, the <script> row
    escaped, the Japanese row in UTF-8), and, parsed back as HTML, the 12
    rows plus the one added at request time, sorted by message;
  - /updates: the answer's values are in the table afterwards (read back
    with psql), every row changed, duplicates agree;
  - plaintext pipelined (16 requests in one write), 64 concurrent /db
    clients, 404 with the same headers, and a clean stop on SIGTERM.

Exit 0 pass, 1 fail, 77 skip (no database: not run under with_db.sh).
TE_TEST_WRAP (environment): a command to run the server under, e.g.
"valgrind -q --error-exitcode=99 --leak-check=full".
"""
import concurrent.futures
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from html.parser import HTMLParser

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def psql(sql):
    out = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def world_table():
    return {int(i): int(r) for i, r in psql("SELECT id, randomnumber FROM world")}


class Server:
    def __init__(self, binary):
        wrap = os.environ.get("TE_TEST_WRAP", "").split()  # e.g. "valgrind -q"
        self.proc = subprocess.Popen(wrap + [binary, "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = b""
        deadline = time.monotonic() + 60
        self.port = None
        fd = self.proc.stdout.fileno()
        while self.port is None:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise SystemExit("server did not start: %r" % self.out)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                self.out += os.read(fd, 4096)
                m = re.search(rb"^techempower: listening on (\d+)$", self.out, re.M)
                if m:
                    self.port = int(m.group(1))

    def get(self, path, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
        if conn is None:
            c.close()
        return r.status, headers, body

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, (self.out + out).decode("utf-8", "replace")


CONTENT_TYPES = {
    "json": r"^application/json(; ?charset=(UTF|utf)-8)?$",
    "html": r"^text/html; ?charset=(UTF|utf)-8$",
    "plaintext": r"^text/plain(; ?charset=(UTF|utf)-8)?$",
}


def check_headers(path, headers, body, kind):
    for h in ("server", "date", "content-type", "content-length"):
        check(h in headers, "%s: header %s missing (%r)" % (path, h, headers))
    if "date" in headers:
        try:
            datetime.strptime(headers["date"], "%a, %d %b %Y %H:%M:%S GMT")
        except ValueError:
            check(False, "%s: bad Date %r" % (path, headers["date"]))
    if "content-length" in headers:
        check(int(headers["content-length"]) == len(body),
              "%s: Content-Length %s, body %d bytes" % (path, headers["content-length"], len(body)))
    if kind and "content-type" in headers:
        check(re.match(CONTENT_TYPES[kind], headers["content-type"]),
              "%s: Content-Type %r" % (path, headers["content-type"]))


def check_world(path, o, table):
    if not check(isinstance(o, dict) and sorted(o) == ["id", "randomNumber"],
                 "%s: not an {id, randomNumber} object: %r" % (path, o)):
        return
    i, r = o["id"], o["randomNumber"]
    check(type(i) is int and 1 <= i <= 10000, "%s: id %r" % (path, i))
    check(type(r) is int and 1 <= r <= 10000, "%s: randomNumber %r" % (path, r))
    if table is not None:
        check(table.get(i) == r, "%s: row %r, the table has %r" % (path, o, table.get(i)))


FORTUNES_HTML = (
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    "<tr><td>11</td><td>&lt;script&gt;alert(&quot;This should not be displayed in a browser "
    "alert box.&quot;);&lt;/script&gt;</td></tr>"
    "<tr><td>4</td><td>A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1</td></tr>"
    "<tr><td>5</td><td>A computer program does what you tell it to do, not what you want it to "
    "do.</td></tr>"
    "<tr><td>2</td><td>A computer scientist is someone who fixes things that aren&#39;t "
    "broken.</td></tr>"
    "<tr><td>8</td><td>A list is only as strong as its weakest link. \u2014 Donald Knuth</td></tr>"
    "<tr><td>0</td><td>Additional fortune added at request time.</td></tr>"
    "<tr><td>3</td><td>After enough decimal places, nobody gives a damn.</td></tr>"
    "<tr><td>7</td><td>Any program that runs right is obsolete.</td></tr>"
    "<tr><td>10</td><td>Computers make very fast, very accurate mistakes.</td></tr>"
    "<tr><td>6</td><td>Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom "
    "Christaensen</td></tr>"
    "<tr><td>9</td><td>Feature: A bug with seniority.</td></tr>"
    "<tr><td>1</td><td>fortune: No such file or directory</td></tr>"
    "<tr><td>12</td><td>\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1"
    "\u30de\u30fc\u30af</td></tr>"
    "</table></body></html>")


class Cells(HTMLParser):
    """The table's cells, entities decoded; and whether a <script> element
    (an unescaped message) appeared."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows, self.cell, self.script = [], None, False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "script":
            self.script = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def main():
    if not os.environ.get("MAY_TEST_PG_CONNINFO"):
        print("test_http: skipped: no database (run under apps/techempower/with_db.sh)")
        return 77
    srv = Server(sys.argv[1])
    table = world_table()
    fortunes_db = {int(i): m for i, m in psql("SELECT id, message FROM fortune")}

    # plaintext, json
    st, h, b = srv.get("/plaintext")
    check(st == 200 and b == b"Hello, World!", "/plaintext: %d %r" % (st, b))
    check_headers("/plaintext", h, b, "plaintext")
    st, h, b = srv.get("/json")
    check(st == 200 and json.loads(b) == {"message": "Hello, World!"}, "/json: %d %r" % (st, b))
    check(len(b) <= 28, "/json: %d bytes (about 28 expected)" % len(b))
    check_headers("/json", h, b, "json")

    # db: one object, equal to the table
    for _ in range(10):
        st, h, b = srv.get("/db")
        check(st == 200, "/db: status %d" % st)
        check_headers("/db", h, b, "json")
        check_world("/db", json.loads(b), table)

    # queries: clamping, every row equal to the table
    cases = [("2", 2), ("0", 1), ("-1", 1), ("foo", 1), ("501", 500), ("", 1), (None, 1),
             ("20", 20), ("99999999999999999999", 500), ("7x", 1)]
    for q, n in cases:
        path = "/queries" if q is None else "/queries?queries=" + q
        st, h, b = srv.get(path)
        check(st == 200, "%s: status %d" % (path, st))
        check_headers(path, h, b, "json")
        a = json.loads(b)
        if check(isinstance(a, list) and len(a) == n,
                 "%s: want a list of %d, got %r" % (path, n, b[:80])):
            for o in a:
                check_world(path, o, table)

    # fortunes: exact HTML, and parsed back
    st, h, b = srv.get("/fortunes")
    check(st == 200, "/fortunes: status %d" % st)
    check_headers("/fortunes", h, b, "html")
    html = b.decode("utf-8")
    check(html == FORTUNES_HTML, "/fortunes: body differs:\n%s\nwant\n%s" % (html, FORTUNES_HTML))
    p = Cells()
    p.feed(html)
    check(not p.script, "/fortunes: an unescaped <script> element")
    want = sorted([(str(i), m) for i, m in fortunes_db.items()] +
                  [("0", "Additional fortune added at request time.")],
                  key=lambda r: r[1].encode("utf-8"))
    got = [tuple(r) for r in p.rows[1:]]
    check(p.rows[:1] == [["id", "message"]] and got == want,
          "/fortunes: rows %r, want %r" % (p.rows, want))
    check(len(fortunes_db) == 12 and fortunes_db.get(12) == "\u30d5\u30ec\u30fc\u30e0\u30ef"
          "\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af", "fortune table: %r" % fortunes_db)

    # updates: clamping, and the answer is what the table holds afterwards
    for q, n in [("1", 1), ("5", 5), ("20", 20), ("501", 500), ("foo", 1), ("0", 1), (None, 1)]:
        path = "/updates" if q is None else "/updates?queries=" + q
        before = world_table()
        st, h, b = srv.get(path)
        check(st == 200, "%s: status %d" % (path, st))
        check_headers(path, h, b, "json")
        a = json.loads(b)
        if not check(isinstance(a, list) and len(a) == n,
                     "%s: want a list of %d, got %r" % (path, n, b[:80])):
            continue
        after = world_table()
        seen = {}
        for o in a:
            check_world(path, o, after)  # persisted: the table holds the answer
            i, r = o["id"], o["randomNumber"]
            check(seen.setdefault(i, r) == r, "%s: id %d twice with different values" % (path, i))
            check(before[i] != r, "%s: id %d not changed (%d)" % (path, i, r))
        changed = sum(1 for i in after if after[i] != before[i])
        check(changed == len(seen), "%s: %d rows changed in the table, %d in the answer"
              % (path, changed, len(seen)))

    # plaintext pipelined: 16 requests in one write, 16 answers in order
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n" * 16)
    data = b""
    while data.count(b"Hello, World!") < 16:
        chunk = s.recv(65536)
        if not check(chunk, "pipelined plaintext: connection closed after %d answers"
                     % data.count(b"Hello, World!")):
            break
        data += chunk
    s.close()
    check(data.count(b"HTTP/1.1 200 OK\r\n") == 16, "pipelined plaintext: %r" % data[:200])

    # concurrency: 64 clients x 10 keep-alive /db requests
    def client(_):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        out = []
        for _ in range(10):
            st, h, b = srv.get("/db", c)
            out.append((st, b))
        c.close()
        return out
    table = world_table()
    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        for res in ex.map(client, range(64)):
            for st, b in res:
                check(st == 200, "concurrent /db: status %d" % st)
                check_world("concurrent /db", json.loads(b), table)

    # 404, with the headers; Date moves on
    st, h, b = srv.get("/nothing-here")
    check(st == 404, "/nothing-here: status %d" % st)
    check_headers("/nothing-here", h, b, None)
    # (TechEmpower's verifier waits 3 s; libmay_http's Date can be a second
    # stale, as time() reads the coarse clock just after the second turns)
    time.sleep(2.1)
    st, h2, b = srv.get("/plaintext")
    check(h2.get("date") != h.get("date"), "Date frozen: %r" % h2.get("date"))

    rc, out = srv.stop()
    check(rc == 0 and "techempower: done" in out, "stop: exit %d, output %r" % (rc, out))
    print(out.strip())
    if FAILS:
        print("test_http: %d failures" % len(FAILS))
        return 1
    print("test_http: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
