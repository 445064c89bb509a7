// sync_chan: 4 producers and 4 consumers share one buffered channel
// (capacity 128).  Peer of bench/sync_chan.c.
//
//	usage: sync_chan [N]   (N messages in all, default 4000000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

const producers, consumers, capacity = 4, 4, 128

func main() {
	n := 4000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	per := n / producers
	ch := make(chan int64, capacity)
	var pwg, cwg sync.WaitGroup
	sums := make([]int64, consumers)
	t0 := time.Now()
	for c := 0; c < consumers; c++ {
		cwg.Add(1)
		go func(c int) {
			var s int64
			for v := range ch {
				s += v
			}
			sums[c] = s
			cwg.Done()
		}(c)
	}
	for p := 0; p < producers; p++ {
		pwg.Add(1)
		go func(p int) {
			for i := 0; i < per; i++ {
				ch <- int64(p*per + i)
			}
			pwg.Done()
		}(p)
	}
	pwg.Wait()
	close(ch)
	cwg.Wait()
	el := time.Since(t0)
	var total int64
	for _, s := range sums {
		total += s
	}
	m := int64(per * producers)
	if total != m*(m-1)/2 {
		panic("bad sum")
	}
	fmt.Printf("go chan: %d messages in %.3f ms, GOMAXPROCS=%d\n", m, float64(el.Nanoseconds())/1e6, runtime.GOMAXPROCS(0))
	fmt.Printf("RESULT chan_4p4c ns_per_msg %.2f ns\n", float64(el.Nanoseconds())/float64(m))
}
