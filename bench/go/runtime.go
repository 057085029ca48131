package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runtimeTest prints "RESULT <value> [<value>]" as the harness expects:
// spawn, yield, pingpong: nanoseconds per operation; park: resident bytes per parked
// goroutine and the milliseconds taken to start them all.
func runtimeTest(test string, n int) error {
	switch test {
	case "spawn", "spawn-wg":
		// Go has no join handle: its spawn+join is already the WaitGroup program that
		// coronet's "spawn-wg" mirrors.
		spawnJoin(n / 10)
		report(float64(spawnJoin(n).Nanoseconds()) / float64(n))
	case "yield":
		yieldPair(n / 10)
		report(float64(yieldPair(n).Nanoseconds()) / float64(2*n))
	case "pingpong":
		pingPong(n / 10)
		report(float64(pingPong(n).Nanoseconds()) / float64(n))
	case "park":
		return park(n)
	default:
		return fmt.Errorf("unknown runtime test %q", test)
	}
	return nil
}

func report(values ...float64) {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = strconv.FormatFloat(v, 'f', 3, 64)
	}
	fmt.Println("RESULT " + strings.Join(parts, " "))
}

// spawnJoin starts n trivial goroutines and waits for all of them (a WaitGroup: Go's join).
func spawnJoin(n int) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	var sum int64
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func(i int64) {
			atomic.AddInt64(&sum, i)
			wg.Done()
		}(int64(i))
	}
	wg.Wait()
	if sum != int64(n)*int64(n-1)/2 {
		panic("wrong sum")
	}
	return time.Since(start)
}

// yieldPair: two goroutines each call runtime.Gosched n times (run with GOMAXPROCS=1).
func yieldPair(n int) time.Duration {
	start := time.Now()
	done := make(chan struct{})
	go func() {
		for i := 0; i < n; i++ {
			runtime.Gosched()
		}
		close(done)
	}()
	for i := 0; i < n; i++ {
		runtime.Gosched()
	}
	<-done
	return time.Since(start)
}

// pingPong: a value goes to a second goroutine and back, n round trips over two channels of
// capacity 1.
func pingPong(n int) time.Duration {
	ping := make(chan int, 1)
	pong := make(chan int, 1)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		if v := <-pong; v != i+1 {
			panic("wrong value")
		}
	}
	elapsed := time.Since(start)
	close(ping)
	return elapsed
}

func rssBytes() float64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	pages, _ := strconv.ParseFloat(fields[1], 64)
	return pages * float64(os.Getpagesize())
}

// park blocks n goroutines on one channel and reports the resident memory they add.
func park(n int) error {
	runtime.GC()
	before := rssBytes()
	ch := make(chan struct{})
	var started int64
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&started, 1)
			<-ch
		}()
		if (i+1)%1024 == 0 {
			fmt.Printf("PROGRESS %d\n", i+1)
		}
	}
	for atomic.LoadInt64(&started) < int64(n) {
		time.Sleep(time.Millisecond)
	}
	spawnMs := float64(time.Since(start).Microseconds()) / 1000
	after := rssBytes()
	report((after-before)/float64(n), spawnMs)
	return nil
}
