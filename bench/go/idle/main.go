// idle: how much an idle runtime costs.  One goroutine blocks on a channel
// and one blocks in Accept on a TCP listener; over the interval we measure
// the process's CPU time and the context switches of all its threads.
// Peer of bench/bench_idle.c.
//
//	usage: idle [seconds]   (default 10)
package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func cpuNs() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// ctxSwitches sums voluntary and involuntary switches over every thread.
func ctxSwitches() (total int64, threads int) {
	paths, _ := filepath.Glob("/proc/self/task/*/status")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		threads++
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") ||
				strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				fs := strings.Fields(l)
				v, _ := strconv.ParseInt(fs[1], 10, 64)
				total += v
			}
		}
	}
	return
}

func main() {
	secs := 10.0
	if len(os.Args) > 1 {
		secs, _ = strconv.ParseFloat(os.Args[1], 64)
	}
	block := make(chan struct{})
	go func() { <-block }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		go func() {
			c, err := ln.Accept()
			if err == nil {
				c.Close()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // let start-up settle

	cs0, threads := ctxSwitches()
	cpu0 := cpuNs()
	t0 := time.Now()
	time.Sleep(time.Duration(secs * float64(time.Second)))
	el := time.Since(t0)
	cpu1 := cpuNs()
	cs1, threads1 := ctxSwitches()
	if threads1 > threads {
		threads = threads1
	}
	close(block)
	if ln != nil {
		ln.Close()
	}

	fmt.Printf("go idle: %.2f s, %d threads\n", el.Seconds(), threads)
	fmt.Printf("RESULT idle cpu_ms %.2f ms\n", float64(cpu1-cpu0)/1e6)
	fmt.Printf("RESULT idle wakeups %d count\n", cs1-cs0)
}
