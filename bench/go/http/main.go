// http: the Go net/http peer of examples/http.c (bench/http.sh), same routes:
// /plaintext "Hello, World!" text/plain, /json {"message":"Hello, World!"},
// 404 otherwise; 127.0.0.1 only.  GOMAXPROCS is the CPUs it may use (the
// script pins it with taskset).
//
//	usage: http [port [seconds]]   (port 8080; seconds > 0: exit then)
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

var (
	plain = []byte("Hello, World!")
	json  = []byte(`{"message":"Hello, World!"}`)
)

func main() {
	port := "8080"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if len(os.Args) > 2 {
		if s, _ := strconv.Atoi(os.Args[2]); s > 0 {
			time.AfterFunc(time.Duration(s)*time.Second, func() { os.Exit(0) })
		}
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Server"] = []string{"go"}
		switch r.URL.Path {
		case "/plaintext":
			hd["Content-Type"] = []string{"text/plain"}
			hd["Content-Length"] = []string{"13"}
			w.Write(plain)
		case "/json":
			hd["Content-Type"] = []string{"application/json"}
			hd["Content-Length"] = []string{"27"}
			w.Write(json)
		default:
			http.NotFound(w, r)
		}
	}
	fmt.Printf("go http: listening on 127.0.0.1:%s\n", port)
	if err := http.ListenAndServe("127.0.0.1:"+port, http.HandlerFunc(h)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
