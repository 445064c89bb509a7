// skynet: the classic benchmark: a 10-ary tree of goroutines with 1,000,000
// leaves; each leaf sends its number, each parent sums its children.
// Peer of bench/bench_skynet.c.
//
//	usage: skynet [procs]   (GOMAXPROCS; default: $GOMAXPROCS or all CPUs)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func skynet(c chan int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	sum := 0
	for i := 0; i < div; i++ {
		sub := num + i*(size/div)
		go skynet(rc, sub, size/div, div)
	}
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	if len(os.Args) > 1 {
		p, err := strconv.Atoi(os.Args[1])
		if err == nil && p > 0 {
			runtime.GOMAXPROCS(p)
		}
	}
	procs := runtime.GOMAXPROCS(0)
	c := make(chan int)
	t0 := time.Now()
	go skynet(c, 0, 1000000, 10)
	sum := <-c
	el := time.Since(t0)
	if sum != 499999500000 {
		fmt.Fprintf(os.Stderr, "skynet: wrong sum %d\n", sum)
		os.Exit(1)
	}
	fmt.Printf("go skynet: sum %d with %d procs in %.3f ms\n", sum, procs, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT skynet ms %.2f ms\n", float64(el.Nanoseconds())/1e6)
}
