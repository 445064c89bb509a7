// echo: a TCP echo server, one goroutine per connection.  Peer of
// examples/echo.c for bench/echo.sh (GO111MODULE=off, standard library only).
//
//	usage: echo [port [seconds [bufsize]]]
//	       (port 8080; seconds > 0: exit then; bufsize 16384)
//
// A bare port listens on 127.0.0.1 only; "host:port" is used as given.  Each
// connection reads bufsize bytes at a time, as examples/echo.c reads
// ECHO_BUF: bench/echo.sh gives both the same size.  GOMAXPROCS comes from
// the environment.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

var bufsize = 16384

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, bufsize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
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
	if len(os.Args) > 3 {
		n, err := strconv.Atoi(os.Args[3])
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "echo: bad bufsize", os.Args[3])
			os.Exit(2)
		}
		bufsize = n
	}
	addr := port
	if !strings.Contains(addr, ":") {
		addr = "127.0.0.1:" + port
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	fmt.Printf("echo: listening on %s, reading %d bytes at a time\n", addr, bufsize)
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		c.(*net.TCPConn).SetNoDelay(true)
		go serve(c)
	}
}
