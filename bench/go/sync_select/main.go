// sync_select: one goroutine selects over two channels and a timeout while
// two producer goroutines send on the channels.  Peer of bench/sync_select.c.
//
//	select_chans  the two channels alone (the baseline)
//	select_after  `case <-time.After(time.Minute)` each round (never fires)
//	select_reset  one Timer, t.Reset(time.Minute) each round, `case <-t.C`
//	select_fire   nothing is sent: `case <-time.After(FIRE_US µs)` wins
//
//	usage: sync_select [N [CAP [FIRE_N [FIRE_US]]]]
//	       N selects per variant (default 1000000), CAP the channels'
//	       capacity (default 0), FIRE_N rounds of select_fire (default
//	       500), FIRE_US its timeout (default 100)
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const timeout = time.Minute // never fires

func producer(ch chan int64, per int) {
	for i := 0; i < per; i++ {
		ch <- int64(i)
	}
}

func run(name string, rounds, capacity int, fire time.Duration) {
	a, b := make(chan int64, capacity), make(chan int64, capacity)
	per := 0
	if fire == 0 {
		per = rounds / 2
		go producer(a, per)
		go producer(b, per)
	}
	var sum int64
	var t *time.Timer
	if name == "select_reset" {
		t = time.NewTimer(timeout)
	}
	t0 := time.Now()
	for i := 0; i < rounds; i++ {
		switch name {
		case "select_chans":
			select {
			case v := <-a:
				sum += v
			case v := <-b:
				sum += v
			}
		case "select_after":
			select {
			case v := <-a:
				sum += v
			case v := <-b:
				sum += v
			case <-time.After(timeout):
				panic("the timeout fired")
			}
		case "select_reset":
			t.Reset(timeout)
			select {
			case v := <-a:
				sum += v
			case v := <-b:
				sum += v
			case <-t.C:
				panic("the timer fired")
			}
		case "select_fire":
			select {
			case <-a:
				panic("a value")
			case <-b:
				panic("a value")
			case <-time.After(fire):
			}
		}
	}
	el := time.Since(t0)
	if t != nil {
		t.Stop()
	}
	if want := 2 * (int64(per) * int64(per-1) / 2); sum != want {
		panic(fmt.Sprintf("%s: bad sum %d, want %d", name, sum, want))
	}
	ns := float64(el.Nanoseconds()) / float64(rounds)
	fmt.Printf("go %s: %d selects in %.3f ms (cap %d)\n", name, rounds, float64(el.Nanoseconds())/1e6, capacity)
	if fire != 0 {
		fmt.Printf("  timeout %.1f us, %.1f us late on average\n", float64(fire.Nanoseconds())/1e3,
			(ns-float64(fire.Nanoseconds()))/1e3)
	}
	fmt.Printf("RESULT %s ns_per_select %.2f ns\n", name, ns)
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
	args := []int{1000000, 0, 500, 100}
	for i := 1; i < len(os.Args) && i <= len(args); i++ {
		v, err := strconv.Atoi(os.Args[i])
		if err != nil || v < 0 {
			fmt.Fprintf(os.Stderr, "bad number '%s'\n", os.Args[i])
			os.Exit(2)
		}
		args[i-1] = v
	}
	n, capacity, fireN, fireUs := args[0]-args[0]%2, args[1], args[2], args[3]
	if n == 0 || fireN == 0 || fireUs == 0 {
		fmt.Fprintln(os.Stderr, "usage: sync_select [N [CAP [FIRE_N [FIRE_US]]]] (N, FIRE_N, FIRE_US > 0)")
		os.Exit(2)
	}
	fmt.Printf("GOMAXPROCS=%d\n", runtime.GOMAXPROCS(0))
	// select_after last: its million timers stay in the timer heap (and
	// in memory) until they fire, a minute later, and would weigh on the
	// others.
	run("select_chans", n, capacity, 0)
	run("select_reset", n, capacity, 0)
	run("select_fire", fireN, capacity, time.Duration(fireUs)*time.Microsecond)
	run("select_after", n, capacity, 0)
	fmt.Printf("peak RSS %d KiB\n", vmhwm())
}
