// httpraw: a minimal "raw" HTTP/1.1 server in Go, in the style of the
// TechEmpower raw entries: package net, a goroutine per connection, no
// net/http.  Peer of examples/http.c for bench/http.sh (GO111MODULE=off,
// standard library only).
//
//	usage: httpraw [port [seconds]]   (port 8080, 127.0.0.1 only;
//	                                   seconds > 0: exit then)
//
// Each read is scanned for complete requests (up to the blank line; request
// bodies are not supported); every complete request in the buffer is
// answered into one output buffer, sent with ONE write, and an incomplete
// tail is kept for the next read.  Routes as in examples/http.c:
// /plaintext "Hello, World!" text/plain, /json {"message":"Hello, World!"},
// 404 otherwise; "Connection: close" closes after the response.  The Date
// header is formatted once a second.  GOMAXPROCS comes from the environment.
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

var date atomic.Value // []byte, "Sun, 06 Nov 1994 08:49:37 GMT"

func updateDate() {
	date.Store([]byte(time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
}

var (
	crlf2     = []byte("\r\n\r\n")
	plainPath = []byte("/plaintext")
	jsonPath  = []byte("/json")
	connHdr   = []byte("onnection:")
)

// wantsClose: a "Connection: close" header (name and value in any case).
func wantsClose(req []byte) bool {
	i := bytes.Index(req, connHdr)
	if i < 1 || (req[i-1]|0x20) != 'c' {
		return false
	}
	v := bytes.TrimLeft(req[i+len(connHdr):], " \t")
	return len(v) >= 5 && bytes.EqualFold(v[:5], []byte("close"))
}

// appendResponse answers one request (the bytes up to and including its
// blank line) and says whether the connection should close afterwards.
func appendResponse(out, req []byte) ([]byte, bool) {
	// request line: METHOD SP TARGET SP VERSION
	sp := bytes.IndexByte(req, ' ')
	var target []byte
	if sp >= 0 {
		rest := req[sp+1:]
		if e := bytes.IndexByte(rest, ' '); e >= 0 {
			target = rest[:e]
		}
	}
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		target = target[:q]
	}
	closeConn := wantsClose(req)
	var status, ctype, body string
	switch {
	case bytes.Equal(target, plainPath):
		status, ctype, body = "200 OK", "text/plain", "Hello, World!"
	case bytes.Equal(target, jsonPath):
		status, ctype, body = "200 OK", "application/json", `{"message":"Hello, World!"}`
	default:
		status, ctype, body = "404 Not Found", "text/plain", "Not Found\n"
	}
	out = append(out, "HTTP/1.1 "...)
	out = append(out, status...)
	out = append(out, "\r\nServer: go\r\nDate: "...)
	out = append(out, date.Load().([]byte)...)
	out = append(out, "\r\nContent-Type: "...)
	out = append(out, ctype...)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	if closeConn {
		out = append(out, "\r\nConnection: close"...)
	}
	out = append(out, "\r\n\r\n"...)
	out = append(out, body...)
	return out, closeConn
}

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16384)
	out := make([]byte, 0, 16384)
	have := 0
	for {
		n, err := c.Read(buf[have:])
		if n <= 0 || err != nil {
			return
		}
		have += n
		data := buf[:have]
		out = out[:0]
		done := false
		for !done {
			end := bytes.Index(data, crlf2)
			if end < 0 {
				break
			}
			out, done = appendResponse(out, data[:end+4])
			data = data[end+4:]
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		if done {
			return
		}
		// keep the incomplete tail at the front of the buffer
		have = copy(buf, data)
		if have == len(buf) { // a request larger than the buffer
			return
		}
	}
}

func main() {
	port := "8080"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if len(os.Args) > 2 {
		if s, _ := strconv.Atoi(os.Args[2]); s > 0 {
			time.AfterFunc(time.Duration(s)*time.Second, func() { os.Exit(0) })
		}
	}
	updateDate()
	go func() {
		for range time.Tick(time.Second) {
			updateDate()
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpraw:", err)
		os.Exit(1)
	}
	fmt.Printf("go httpraw: listening on 127.0.0.1:%s\n", port)
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
