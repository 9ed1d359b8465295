package deploy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
)

// serviceProxy plays kube-proxy for an apiserver: an HTTP CONNECT proxy on
// a Unix socket, named in the apiserver's egress selector configuration for
// its "cluster" traffic (webhook calls among it). A CONNECT to a Service's
// ClusterIP:port reaches one of the ready endpoints the tests set, in turn;
// with none ready, the connection is refused, as kube-proxy rejects it.
type serviceProxy struct {
	mu       sync.Mutex
	backends map[string][]string // ClusterIP:port -> ready host:port
	next     int
	tunnels  map[net.Conn]string // open connections to a backend -> backend
}

// cut closes every open connection to backend, as a network partition
// would; kube-proxy itself leaves established connections alone.
func (p *serviceProxy) cut(backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for conn, b := range p.tunnels {
		if b == backend {
			_ = conn.Close()
		}
	}
}

func (p *serviceProxy) track(conn net.Conn, backend string) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tunnels == nil {
		p.tunnels = map[net.Conn]string{}
	}
	p.tunnels[conn] = backend
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.tunnels, conn)
	}
}

// setEndpoints routes clusterIPPort to ready (none: refused).
func (p *serviceProxy) setEndpoints(clusterIPPort string, ready []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends[clusterIPPort] = append([]string(nil), ready...)
}

func (p *serviceProxy) pick(target string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ready := p.backends[target]
	if len(ready) == 0 {
		return "", false
	}
	p.next++
	return ready[p.next%len(ready)], true
}

// startServiceProxy serves a proxy on a socket in dir and returns it with
// the apiserver's egress selector configuration file.
func startServiceProxy(dir string) (*serviceProxy, string, error) {
	p := &serviceProxy{backends: map[string][]string{}}
	socket := filepath.Join(dir, "service-proxy.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, "", err
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(conn)
		}
	}()
	config := filepath.Join(dir, "egress-selector.yaml")
	return p, config, os.WriteFile(config, fmt.Appendf(nil, `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, socket), 0o600)
}

func (p *serviceProxy) serve(conn net.Conn) {
	defer conn.Close()
	reader := bufio.NewReader(conn)
	req, err := http.ReadRequest(reader)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	backend, ok := p.pick(req.Host)
	if !ok {
		fmt.Fprintf(conn, "HTTP/1.1 503 Service Unavailable\r\n\r\nno ready endpoint for %s\n", req.Host)
		return
	}
	upstream, err := net.Dial("tcp", backend)
	if err != nil {
		fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v\n", err)
		return
	}
	defer upstream.Close()
	defer p.track(upstream, backend)()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, reader); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, upstream); done <- struct{}{} }()
	<-done
}
