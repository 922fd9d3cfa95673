// The Go peer of bench_tcp_echo (tests/bench/tcp_echo.cpp): an echo server
// with the standard library only. net.Listen on 127.0.0.1:0, one goroutine
// per connection reading into a 4 KiB buffer and writing back what it read.
// Go sets TCP_NODELAY on every connection. tests/bench/CMakeLists.txt builds
// it when Go 1.19 is installed; bench_tcp_echo runs it in a child process
// with GOMAXPROCS = the configuration's worker count:
//
//	echo_go -procs N
//
// It prints "PORT PID" on stdout once it listens (the harness reads that
// line), then serves until it is killed.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	procs := flag.Int("procs", runtime.NumCPU(), "GOMAXPROCS")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	// Die with the harness (prctl(PR_SET_PDEATHSIG, SIGKILL)), even if it is
	// killed before it can stop us.
	syscall.RawSyscall(syscall.SYS_PRCTL, 1, uintptr(syscall.SIGKILL), 0)
	// Go's Listen uses the kernel's somaxconn as its backlog.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_go:", err)
		os.Exit(1)
	}
	fmt.Printf("%d %d\n", l.Addr().(*net.TCPAddr).Port, os.Getpid())
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo_go: accept:", err)
			continue
		}
		go serve(c)
	}
}
