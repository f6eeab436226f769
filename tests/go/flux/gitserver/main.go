// gitserver serves the git repositories under -root over HTTP on 127.0.0.1 (a port the kernel
// picks) with Flux's own test git server, github.com/fluxcd/pkg/gittestserver, so that the Flux
// tests clone from a real git smart-HTTP endpoint as source-controller does in a cluster. It prints
// the base URL as its first line of stdout and serves until its stdin closes (its parent, the
// test, has gone) or it is signalled.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/fluxcd/pkg/gittestserver"
)

func main() {
	root := flag.String("root", "", "folder holding the bare repositories to serve (required)")
	flag.Parse()
	if *root == "" {
		log.Fatal("gitserver: -root is required")
	}

	server := gittestserver.NewGitServer(*root)
	// httptest binds 127.0.0.1 only.
	if err := server.StartHTTP(); err != nil {
		log.Fatalf("gitserver: starting HTTP: %v", err)
	}
	defer server.StopHTTP()
	fmt.Println(server.HTTPAddress())

	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-stdinClosed:
	case <-signals:
	}
}
