// The classic skynet benchmark in Go, for side-by-side runs against
// tests/bench/skynet.cpp on the same machine (not built by CMake):
//
//   /usr/lib/go-1.19/bin/go run tests/bench/go/skynet.go [-procs N]
//
// Prints `bench skynet_go time MS ms` like our benchmarks.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"time"
)

func skynet(c chan int, num int, size int, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	sum := 0
	for i := 0; i < div; i++ {
		subNum := num + i*(size/div)
		go skynet(rc, subNum, size/div, div)
	}
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	procs := flag.Int("procs", runtime.NumCPU(), "GOMAXPROCS")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	best := time.Duration(1 << 62)
	for round := 0; round < 3; round++ {
		c := make(chan int)
		start := time.Now()
		go skynet(c, 0, 1000000, 10)
		result := <-c
		took := time.Since(start)
		if result != 499999500000 {
			panic(fmt.Sprintf("wrong sum %d", result))
		}
		if took < best {
			best = took
		}
	}
	fmt.Printf("bench skynet_go time %.1f ms\n", float64(best.Microseconds())/1000.0)
}
