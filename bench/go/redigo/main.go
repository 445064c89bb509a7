// redigo: the Go peer of bench/hooks/redis_bench.c (bench/hooks.sh):
// conns goroutines, each with its own redigo connection (Debian's
// golang-github-gomodule-redigo-dev), sending SET key:<c> xxx and
// GET key:<c> in turn, one request in flight per connection, until
// requests have been made in all; every reply is checked.
//
//	redigo HOST PORT [conns [requests]]
//
// Prints "requests N seconds S rps R errors E".
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: redigo HOST PORT [conns [requests]]")
		os.Exit(2)
	}
	addr := os.Args[1] + ":" + os.Args[2]
	conns, requests := 64, 200000
	if len(os.Args) > 3 {
		conns, _ = strconv.Atoi(os.Args[3])
	}
	if len(os.Args) > 4 {
		requests, _ = strconv.Atoi(os.Args[4])
	}
	perConn := (requests/conns + 1) &^ 1
	var errors int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			conn, err := redis.Dial("tcp", addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, "redigo: connect:", err)
				atomic.AddInt64(&errors, int64(perConn))
				return
			}
			defer conn.Close()
			key := "key:" + strconv.Itoa(c)
			for i := 0; i < perConn; i += 2 {
				if s, err := redis.String(conn.Do("SET", key, "xxx")); err != nil || s != "OK" {
					atomic.AddInt64(&errors, 1)
				}
				if s, err := redis.String(conn.Do("GET", key)); err != nil || s != "xxx" {
					atomic.AddInt64(&errors, 1)
				}
			}
		}(c)
	}
	wg.Wait()
	s := time.Since(t0).Seconds()
	n := perConn * conns
	fmt.Printf("requests %d seconds %.3f rps %.0f errors %d\n", n, s, float64(n)/s, errors)
	if errors != 0 {
		os.Exit(1)
	}
}
