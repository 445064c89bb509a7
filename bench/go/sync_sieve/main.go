// sync_sieve: the concurrent prime sieve (a chain of filter goroutines
// joined by unbuffered channels) up to the Nth prime.  Peer of
// bench/sync_sieve.c.
//
//	usage: sync_sieve [N]   (default 10000; prints the Nth prime)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func generate(ch chan<- int) {
	for i := 2; ; i++ {
		ch <- i
	}
}

func filter(in <-chan int, out chan<- int, prime int) {
	for {
		i := <-in
		if i%prime != 0 {
			out <- i
		}
	}
}

func main() {
	n := 10000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	t0 := time.Now()
	ch := make(chan int)
	go generate(ch)
	prime := 0
	for i := 0; i < n; i++ {
		prime = <-ch
		ch1 := make(chan int)
		go filter(ch, ch1, prime)
		ch = ch1
	}
	el := time.Since(t0)
	fmt.Printf("go sieve: prime #%d is %d, %.3f ms, GOMAXPROCS=%d\n", n, prime, float64(el.Nanoseconds())/1e6, runtime.GOMAXPROCS(0))
	fmt.Printf("RESULT sieve ms %.2f ms\n", float64(el.Nanoseconds())/1e6)
}
