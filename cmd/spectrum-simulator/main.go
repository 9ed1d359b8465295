// Command spectrum-simulator serves the simulated Cloudflare Spectrum apps
// API (package spectrumtest) on a loopback address, for demos and for tests
// that drive it from outside. See docs/simulator.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

func main() {
	configPath := flag.String("config", "", "simulator config file, YAML or JSON (required; see docs/simulator.md)")
	listen := flag.String("listen", "127.0.0.1:8787", "loopback address to listen on")
	flag.Parse()

	if err := run(*configPath, *listen); err != nil {
		log.Printf("spectrum-simulator: %v", err)
		os.Exit(1)
	}
}

func run(configPath, listen string) error {
	if configPath == "" {
		return errors.New("--config is required")
	}
	if err := requireLoopback(listen); err != nil {
		return err
	}
	cfg, err := spectrumtest.LoadConfig(configPath)
	if err != nil {
		return err
	}
	sim, err := spectrumtest.New(cfg)
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	base := "http://" + listener.Addr().String()
	fmt.Printf("spectrum simulator: API base URL %s%s (control API %s%s)\n",
		base, spectrumtest.APIPrefix, base, spectrumtest.AdminPrefix)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		return err
	}
	log.Printf("spectrum-simulator: stopped")
	return nil
}

// requireLoopback refuses to serve anywhere but this machine: the simulator
// has no authentication of its own and its control API rewrites its state.
func requireLoopback(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", listen, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen %q: only loopback addresses (127.0.0.1, [::1], localhost) are allowed", listen)
	}
	return nil
}
