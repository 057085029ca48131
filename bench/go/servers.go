package main

import (
	"bytes"
	"net"
	"net/http"
	"time"
)

var helloResponse = []byte("HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!")

// acceptLoop accepts forever and runs handle on a goroutine per connection.
func acceptLoop(addr string, handle func(*net.TCPConn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			// EMFILE and friends: back off instead of spinning.
			time.Sleep(time.Millisecond)
			continue
		}
		tc := c.(*net.TCPConn)
		tc.SetNoDelay(true)
		go handle(tc)
	}
}

func serveEcho(addr string) error {
	return acceptLoop(addr, func(c *net.TCPConn) {
		defer c.Close()
		buf := make([]byte, 8192)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

func serveHTTP(addr string) error {
	hello := []byte("Hello, World!")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	return http.ListenAndServe(addr, handler)
}

// serveHTTPRaw answers every request (delimited by "\r\n\r\n", no body) with a fixed response,
// keeping the connection alive: the same hand loop as the Rust peers.
func serveHTTPRaw(addr string) error {
	sep := []byte("\r\n\r\n")
	return acceptLoop(addr, func(c *net.TCPConn) {
		defer c.Close()
		buf := make([]byte, 8192)
		out := make([]byte, 0, 8192)
		filled := 0
		for {
			n, err := c.Read(buf[filled:])
			if n == 0 || err != nil {
				return
			}
			filled += n
			start := 0
			out = out[:0]
			for {
				i := bytes.Index(buf[start:filled], sep)
				if i < 0 {
					break
				}
				start += i + len(sep)
				out = append(out, helloResponse...)
			}
			copy(buf, buf[start:filled])
			filled -= start
			if filled == len(buf) {
				return // a request larger than the buffer: not this benchmark's traffic
			}
			if len(out) > 0 {
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}
	})
}
