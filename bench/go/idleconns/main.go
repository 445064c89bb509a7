// idleconns: opens N HTTP/1.1 keep-alive connections, makes one request on
// each, and then holds them idle, for bench/idle_conns.sh (GO111MODULE=off,
// standard library only).
//
//	usage: idleconns host:port N [seconds]   (seconds: hold at most this
//	                                          long, default 60)
//
// Connects with at most 64 dials in flight, sends "GET /plaintext" on each
// connection and reads the whole response (Content-Length).  Then it prints
//
//	READY connected <n> failed <m> ms <connect+request time>
//
// and waits.  On SIGUSR1 (or when the time is up) it makes a second request
// on every connection, to check the server kept them all, prints
//
//	ALIVE <k> of <n>
//
// and exits (closing them all).
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var req []byte

// roundTrip sends one request and reads one response through r.
func roundTrip(c net.Conn, r *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(req); err != nil {
		return err
	}
	clen := -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if i := bytes.IndexByte(line, ':'); i > 0 &&
			bytes.EqualFold(line[:i], []byte("Content-Length")) {
			clen, _ = strconv.Atoi(string(bytes.TrimSpace(line[i+1:])))
		}
	}
	if clen < 0 {
		return fmt.Errorf("no Content-Length")
	}
	_, err := r.Discard(clen)
	return err
}

type conn struct {
	c net.Conn
	r *bufio.Reader
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: idleconns host:port N [seconds]")
		os.Exit(2)
	}
	addr := os.Args[1]
	n, _ := strconv.Atoi(os.Args[2])
	hold := 60
	if len(os.Args) > 3 {
		hold, _ = strconv.Atoi(os.Args[3])
	}
	req = []byte("GET /plaintext HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")

	conns := make([]*conn, n)
	var failed int64
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err == nil {
				r := bufio.NewReaderSize(c, 512)
				if err = roundTrip(c, r); err == nil {
					conns[i] = &conn{c, r}
					return
				}
				c.Close()
			}
			mu.Lock()
			failed++
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "idleconns: first error:", firstErr)
	}
	fmt.Printf("READY connected %d failed %d ms %d\n", int64(n)-failed, failed,
		time.Since(t0).Milliseconds())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		if s != syscall.SIGUSR1 {
			os.Exit(1)
		}
	case <-time.After(time.Duration(hold) * time.Second):
	}

	var alive, total int64
	var secondErr error
	for _, c := range conns {
		if c == nil {
			continue
		}
		total++
		wg.Add(1)
		sem <- struct{}{}
		go func(c *conn) {
			defer func() { <-sem; wg.Done() }()
			err := roundTrip(c.c, c.r)
			mu.Lock()
			if err == nil {
				alive++
			} else if secondErr == nil {
				secondErr = err
			}
			mu.Unlock()
			c.c.Close()
		}(c)
	}
	wg.Wait()
	if secondErr != nil {
		fmt.Fprintln(os.Stderr, "idleconns: second request: first error:", secondErr)
	}
	fmt.Printf("ALIVE %d of %d\n", alive, total)
}
