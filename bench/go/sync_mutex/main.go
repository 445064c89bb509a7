// sync_mutex: many goroutines increment one counter under a sync.Mutex.
// Peer of bench/sync_mutex.c.
//
//	usage: sync_mutex [N [G]]   (N increments in all, default 10000000;
//	                             G goroutines, default 1000)
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
	n, g := 10000000, 1000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		g, _ = strconv.Atoi(os.Args[2])
	}
	per := n / g
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	t0 := time.Now()
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			for k := 0; k < per; k++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	if counter != per*g {
		panic("bad count")
	}
	fmt.Printf("go mutex: %d increments by %d goroutines in %.3f ms, GOMAXPROCS=%d\n", counter, g, float64(el.Nanoseconds())/1e6, runtime.GOMAXPROCS(0))
	fmt.Printf("RESULT mutex_co ns_per_op %.2f ns\n", float64(el.Nanoseconds())/float64(counter))
}
