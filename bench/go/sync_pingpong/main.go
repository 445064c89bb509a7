// sync_pingpong: two goroutines bounce an int over two unbuffered channels.
// Peer of bench/sync_pingpong.c.
//
//	usage: sync_pingpong [N [PROCS]]   (N round trips, default 2000000;
//	                                    PROCS = GOMAXPROCS, default 1)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n, procs := 2000000, 1
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		procs, _ = strconv.Atoi(os.Args[2])
	}
	runtime.GOMAXPROCS(procs)
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	t0 := time.Now()
	v := 0
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	el := time.Since(t0)
	close(ping)
	if v != n {
		panic("lost a message")
	}
	fmt.Printf("go pingpong: %d round trips in %.3f ms, GOMAXPROCS=%d\n", n, float64(el.Nanoseconds())/1e6, procs)
	fmt.Printf("RESULT pingpong_w%d ns_per_roundtrip %.2f ns\n", procs, float64(el.Nanoseconds())/float64(n))
}
