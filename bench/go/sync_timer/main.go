// sync_timer: the cost of timers that never fire.  Peer of
// bench/sync_timer.c (same metrics, ns per operation):
//
//	timer_create_stop      time.NewTimer(time.Minute); Stop(), one goroutine
//	timer_create_stop_par  the same from GOMAXPROCS goroutines, N in all
//	timer_reset_stop       one Timer: Reset(time.Minute); Stop()
//	timer_armed_create     ARMED timers with random durations between one
//	                       and two minutes, all left armed; per timer
//	timer_armed_stop       then each stopped, in creation order; per timer
//
//	usage: sync_timer [N [ARMED]]   (N per loop, default 2000000;
//	                                 ARMED default 1000000)
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

const timeout = time.Minute // never fires

func createStop(n int) {
	for i := 0; i < n; i++ {
		t := time.NewTimer(timeout)
		if !t.Stop() {
			panic("Stop: the timer was not armed")
		}
	}
}

// The same generator as the C program's, so both arm the same deadlines.
func xorshift(s *uint64) uint64 {
	*s ^= *s << 13
	*s ^= *s >> 7
	*s ^= *s << 17
	return *s
}

// Peak resident set size in KiB (VmHWM), or -1.
func vmhwm() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmHWM:") {
			v, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(s.Text()[6:]), " kB"))
			return v
		}
	}
	return -1
}

func main() {
	args := []int{2000000, 1000000}
	for i := 1; i < len(os.Args) && i <= len(args); i++ {
		v, err := strconv.Atoi(os.Args[i])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: sync_timer [N [ARMED]] (both > 0)")
			os.Exit(2)
		}
		args[i-1] = v
	}
	n, narmed := args[0], args[1]
	g := runtime.GOMAXPROCS(0)
	fmt.Printf("GOMAXPROCS=%d\n", g)

	t0 := time.Now()
	createStop(n)
	el := time.Since(t0).Nanoseconds()
	fmt.Printf("go create+stop: %d in %.3f ms\n", n, float64(el)/1e6)
	fmt.Printf("RESULT timer_create_stop ns_per_op %.2f ns\n", float64(el)/float64(n))

	var wg sync.WaitGroup
	t0 = time.Now()
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			createStop(n / g)
			wg.Done()
		}()
	}
	wg.Wait()
	el = time.Since(t0).Nanoseconds()
	total := n / g * g
	fmt.Printf("go create+stop in %d goroutines: %d in %.3f ms\n", g, total, float64(el)/1e6)
	fmt.Printf("RESULT timer_create_stop_par ns_per_op %.2f ns\n", float64(el)/float64(total))

	t := time.NewTimer(timeout)
	t.Stop()
	t0 = time.Now()
	for i := 0; i < n; i++ {
		t.Reset(timeout)
		t.Stop()
	}
	el = time.Since(t0).Nanoseconds()
	fmt.Printf("go reset+stop: %d in %.3f ms\n", n, float64(el)/1e6)
	fmt.Printf("RESULT timer_reset_stop ns_per_op %.2f ns\n", float64(el)/float64(n))

	ts := make([]*time.Timer, narmed)
	seed := uint64(88172645463325252)
	t0 = time.Now()
	for i := range ts {
		d := timeout + time.Duration(xorshift(&seed)%uint64(timeout))
		ts[i] = time.NewTimer(d)
	}
	t1 := time.Now()
	stopped := 0
	for _, t := range ts {
		if t.Stop() {
			stopped++
		}
	}
	t2 := time.Now()
	if stopped != narmed {
		panic(fmt.Sprintf("stopped %d armed timers of %d", stopped, narmed))
	}
	create, stop := t1.Sub(t0).Nanoseconds(), t2.Sub(t1).Nanoseconds()
	fmt.Printf("go %d armed timers: created in %.3f ms, stopped in %.3f ms\n", narmed,
		float64(create)/1e6, float64(stop)/1e6)
	fmt.Printf("RESULT timer_armed_create ns_per_op %.2f ns\n", float64(create)/float64(narmed))
	fmt.Printf("RESULT timer_armed_stop ns_per_op %.2f ns\n", float64(stop)/float64(narmed))
	fmt.Printf("peak RSS %d KiB\n", vmhwm())
}
