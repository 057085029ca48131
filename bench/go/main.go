// Command gobench holds the Go peers of coronet's benchmark harness (stdlib only).
//
//	gobench echo <addr>           goroutine-per-connection echo server
//	gobench http <addr>           net/http "Hello, World!" server
//	gobench httpraw <addr>        raw keep-alive HTTP loop, goroutine per connection
//	gobench rt <test> <n>         runtime measurement: spawn (or spawn-wg, the same), yield, pingpong, park
//
// Workers are set with GOMAXPROCS. Servers exit by themselves after a bounded lifetime
// (GOBENCH_LIFETIME seconds, default 300) so a lost harness never leaves them running.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gobench echo|http|httpraw <addr> | gobench rt <test> <n>")
		os.Exit(2)
	}
	lifetime := 300
	if s := os.Getenv("GOBENCH_LIFETIME"); s != "" {
		if v, err := strconv.Atoi(s); err == nil {
			lifetime = v
		}
	}
	time.AfterFunc(time.Duration(lifetime)*time.Second, func() {
		fmt.Fprintln(os.Stderr, "gobench: lifetime over, exiting")
		os.Exit(3)
	})
	var err error
	switch os.Args[1] {
	case "echo":
		err = serveEcho(os.Args[2])
	case "http":
		err = serveHTTP(os.Args[2])
	case "httpraw":
		err = serveHTTPRaw(os.Args[2])
	case "rt":
		if len(os.Args) < 4 {
			err = fmt.Errorf("usage: gobench rt <test> <n>")
			break
		}
		var n int
		n, err = strconv.Atoi(os.Args[3])
		if err == nil {
			err = runtimeTest(os.Args[2], n)
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
}
