// switch: two goroutines hand the CPU to each other with runtime.Gosched
// on one P (GOMAXPROCS=1).  Peer of bench/bench_switch.c.
//
//	usage: switch [N]   (N = total hand-offs, default 10000000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func main() {
	n := 10000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	runtime.GOMAXPROCS(1)
	per := n / 2
	var wg sync.WaitGroup
	wg.Add(2)
	f := func() {
		for i := 0; i < per; i++ {
			runtime.Gosched()
		}
		wg.Done()
	}
	t0 := time.Now()
	go f()
	go f()
	wg.Wait()
	el := time.Since(t0)
	total := 2 * per
	fmt.Printf("go switch: %d hand-offs in %.3f ms\n", total, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT switch ns_per_switch %.2f ns\n", float64(el.Nanoseconds())/float64(total))
}
