// spawn: start and wait for N trivial goroutines, one at a time and in
// batches of 1000.  Peer of bench/bench_spawn.c.
//
//	usage: spawn [N]   (default 1000000)
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

const batch = 1000

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	var wg sync.WaitGroup
	f := func() { wg.Done() }

	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go f()
		wg.Wait()
	}
	seq := time.Since(t0)

	nb := n / batch
	t0 = time.Now()
	for b := 0; b < nb; b++ {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go f()
		}
		wg.Wait()
	}
	bat := time.Since(t0)

	fmt.Printf("go spawn: %d one-at-a-time in %.3f ms, %d in batches of %d in %.3f ms\n",
		n, float64(seq.Nanoseconds())/1e6, nb*batch, batch, float64(bat.Nanoseconds())/1e6)
	fmt.Printf("RESULT spawn ns_per_spawn_join %.2f ns\n", float64(seq.Nanoseconds())/float64(n))
	fmt.Printf("RESULT spawn ns_per_spawn_batch %.2f ns\n", float64(bat.Nanoseconds())/float64(nb*batch))
}
