// The pipeline benchmark in Go, the same program as tests/bench/pipeline.cpp:
// one producer formats N lines "key=<i> value=<i*7>" onto a buffered
// channel, 8 parsers parse each line into two ints and send them on a
// second buffered channel, one aggregator sums them; the sums are checked.
// Best of 3 rounds. tests/bench/CMakeLists.txt builds it when Go 1.19 is
// installed, and bench_pipeline runs it in the same run (its `time_go`);
// by hand:
//
//   /usr/lib/go-1.19/bin/go run tests/bench/go/pipeline.go [-procs N] [-count N]
//
// Prints `bench pipeline_go time MS ms` like our benchmarks.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

const parsers = 8
const capacity = 128

type pair struct{ key, value int64 }

func parse(line string) pair {
	// "key=<k> value=<v>"
	sp := strings.IndexByte(line, ' ')
	k, err1 := strconv.ParseInt(line[len("key="):sp], 10, 64)
	v, err2 := strconv.ParseInt(line[sp+1+len("value="):], 10, 64)
	if err1 != nil || err2 != nil {
		return pair{-1, -1}
	}
	return pair{k, v}
}

func round(n int64) (int64, int64) {
	lines := make(chan string, capacity)
	parsed := make(chan pair, capacity)
	go func() {
		for i := int64(0); i < n; i++ {
			lines <- "key=" + strconv.FormatInt(i, 10) + " value=" + strconv.FormatInt(i*7, 10)
		}
		close(lines)
	}()
	var wg sync.WaitGroup
	for p := 0; p < parsers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range lines {
				parsed <- parse(l)
			}
		}()
	}
	go func() {
		wg.Wait()
		close(parsed)
	}()
	var keys, values int64
	for p := range parsed {
		keys += p.key
		values += p.value
	}
	return keys, values
}

func main() {
	procs := flag.Int("procs", runtime.NumCPU(), "GOMAXPROCS")
	count := flag.Int64("count", 1000000, "lines per round")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	n := *count
	best := time.Duration(1 << 62)
	for r := 0; r < 3; r++ {
		t0 := time.Now()
		keys, values := round(n)
		d := time.Since(t0)
		if keys != n*(n-1)/2 || values != 7*(n*(n-1)/2) {
			fmt.Fprintf(os.Stderr, "bench pipeline_go: SELF-CHECK FAILED: sums %d %d\n", keys, values)
			os.Exit(1)
		}
		if d < best {
			best = d
		}
	}
	fmt.Printf("bench pipeline_go time %.6g ms\n", float64(best.Nanoseconds())/1e6)
}
