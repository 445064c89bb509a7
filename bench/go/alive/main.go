// alive: N goroutines blocked at once, then released and waited for.
// Peer of bench/bench_alive.c.
//
//	usage: alive [N]   (default 1000000; env ALIVE_N also works)
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func vmHWMKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		l := s.Text()
		if strings.HasPrefix(l, "VmHWM:") {
			fs := strings.Fields(l)
			v, _ := strconv.ParseInt(fs[1], 10, 64)
			return v
		}
	}
	return -1
}

func main() {
	n := 1000000
	if v := os.Getenv("ALIVE_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	// Every goroutine blocks on one shared channel; closing it releases all
	// of them at once (cheaper for Go than a wake-up per goroutine).
	release := make(chan struct{})
	var started int64
	var done sync.WaitGroup
	done.Add(n)
	f := func() {
		atomic.AddInt64(&started, 1)
		<-release
		done.Done()
	}

	t0 := time.Now()
	for i := 0; i < n; i++ {
		go f()
	}
	// Wait until every goroutine has run up to its receive.  (A WaitGroup
	// here is much slower under contention than an atomic counter.)
	for atomic.LoadInt64(&started) < int64(n) {
		time.Sleep(time.Millisecond)
	}
	t1 := time.Now()
	close(release)
	done.Wait()
	t2 := time.Now()

	total := t2.Sub(t0).Nanoseconds()
	hwm := vmHWMKiB()
	fmt.Printf("go alive: %d goroutines: spawn+block %.1f ms, release+wait %.1f ms\n",
		n, float64(t1.Sub(t0).Nanoseconds())/1e6, float64(t2.Sub(t1).Nanoseconds())/1e6)
	fmt.Printf("RESULT alive ns_per_coroutine %.1f ns\n", float64(total)/float64(n))
	fmt.Printf("RESULT alive peak_rss %.1f MB\n", float64(hwm)/1024.0)
}
