// Command nh-ferretdb runs FerretDB 1.x (SQLite backend) for the test rig.
//
// It uses FerretDB's embeddable package instead of `go install .../cmd/ferretdb`:
// a binary built by `go install` from the module proxy panics at start-up because
// the module zip lacks the generated build/version/version.txt file.
//
// Usage: nh-ferretdb -listen 127.0.0.1:PORT -dir /path/to/data
//
// With -listen-tls ADDR (and -listen-tls-cert-file, -listen-tls-key-file) it also serves TLS on ADDR, as
// `ferretdb --listen-tls` does; -listen-tls-ca-file makes it require client certificates signed by that CA.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (loopback only)")
	dir := flag.String("dir", "", "directory for the SQLite files (created if missing)")
	level := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	listenTLS := flag.String("listen-tls", "", "TLS address to listen on too (loopback only); empty: no TLS listener")
	tlsCert := flag.String("listen-tls-cert-file", "", "PEM certificate of the TLS listener")
	tlsKey := flag.String("listen-tls-key-file", "", "PEM private key of the TLS listener")
	tlsCA := flag.String("listen-tls-ca-file", "", "PEM CA of the client certificates the TLS listener requires (empty: none)")
	flag.Parse()

	if *dir == "" {
		fmt.Fprintln(os.Stderr, "nh-ferretdb: -dir is required")
		os.Exit(2)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nh-ferretdb:", err)
		os.Exit(2)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "nh-ferretdb:", err)
		os.Exit(2)
	}

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(os.Stderr, "nh-ferretdb: bad -log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP:         *listen,
			TLS:         *listenTLS,
			TLSCertFile: *tlsCert,
			TLSKeyFile:  *tlsKey,
			TLSCAFile:   *tlsCA,
		},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "nh-ferretdb:", err)
		os.Exit(1)
	}

	// Printed once the listener is being set up; readiness is still decided by a TCP/wire probe.
	fmt.Fprintf(os.Stderr, "nh-ferretdb: serving %s with SQLite in %s\n", *listen, abs)
	if err := f.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "nh-ferretdb:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "nh-ferretdb: stopped")
}
