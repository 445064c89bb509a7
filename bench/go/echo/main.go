// echo: a TCP echo server, one goroutine per connection.  Peer of
// examples/echo.c for bench/echo.sh (GO111MODULE=off, standard library only).
//
//	usage: echo [port [seconds]]   (port 8080; seconds > 0: exit then)
//
// A bare port listens on 127.0.0.1 only; "host:port" is used as given.
// GOMAXPROCS comes from the environment.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
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
	addr := port
	if !strings.Contains(addr, ":") {
		addr = "127.0.0.1:" + port
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	fmt.Printf("echo: listening on %s\n", addr)
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		c.(*net.TCPConn).SetNoDelay(true)
		go serve(c)
	}
}
