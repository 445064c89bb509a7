// pgx: the Go peer of bench/hooks/pq_bench.c (bench/hooks.sh): conns
// goroutines, each with its own pgx connection (Debian's
// golang-github-jackc-pgx-v4-dev; pgx.Connect, no pool), running one query
// at a time until queries have run in all; every result is checked.
// pgx's default statement cache prepares each query once per connection,
// as pq_bench does with PQprepare.
//
//	pgx URL select1|lookup [conns [queries]]
//
// select1: SELECT 1.  lookup: SELECT v FROM kv WHERE k = $1 (one row by
// primary key; v is 'v' || k).  Prints "requests N seconds S rps R errors E".
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v4"
)

func main() {
	if len(os.Args) < 3 || (os.Args[2] != "select1" && os.Args[2] != "lookup") {
		fmt.Fprintln(os.Stderr, "usage: pgx URL select1|lookup [conns [queries]]")
		os.Exit(2)
	}
	url, lookup := os.Args[1], os.Args[2] == "lookup"
	conns, queries := 64, 100000
	if len(os.Args) > 3 {
		conns, _ = strconv.Atoi(os.Args[3])
	}
	if len(os.Args) > 4 {
		queries, _ = strconv.Atoi(os.Args[4])
	}
	perConn := (queries + conns - 1) / conns
	var errors int64
	var wg sync.WaitGroup
	ctx := context.Background()
	t0 := time.Now()
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				fmt.Fprintln(os.Stderr, "pgx: connect:", err)
				atomic.AddInt64(&errors, int64(perConn))
				return
			}
			defer conn.Close(ctx)
			for i := 0; i < perConn; i++ {
				key := (c*7919+i)%10000 + 1
				if lookup {
					var v string
					err := conn.QueryRow(ctx, "SELECT v FROM kv WHERE k = $1", key).Scan(&v)
					if err != nil || v != "v"+strconv.Itoa(key) {
						atomic.AddInt64(&errors, 1)
					}
				} else {
					var n int
					err := conn.QueryRow(ctx, "SELECT 1").Scan(&n)
					if err != nil || n != 1 {
						atomic.AddInt64(&errors, 1)
					}
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
