package entitlements

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A real sidecar process (the repo's, from its .venv: `make test` builds it; ENTITLEMENTS_SIDECAR_PYTHON
// names another interpreter that has it installed) on the example catalog, on free loopback ports.
type sidecar struct {
	t       testing.TB
	address string
	catalog string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	http    string
}

func repoRoot(t testing.TB) string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func freePort(t testing.TB) string {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return strconv.Itoa(listener.Addr().(*net.TCPAddr).Port)
}

func startSidecar(t testing.TB) *sidecar {
	t.Helper()
	root := repoRoot(t)
	catalog := filepath.Join(t.TempDir(), "catalog.yaml")
	example, err := os.ReadFile(filepath.Join(root, "examples", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(catalog, example, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{t: t, address: "127.0.0.1:" + freePort(t), catalog: catalog, http: "127.0.0.1:" + freePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *sidecar) start() {
	s.t.Helper()
	python := os.Getenv("ENTITLEMENTS_SIDECAR_PYTHON")
	if python == "" {
		python = filepath.Join(repoRoot(s.t), ".venv", "bin", "python")
	}
	if _, err := os.Stat(python); err != nil {
		s.t.Fatalf("no Python with the sidecar at %s (run make test, or set ENTITLEMENTS_SIDECAR_PYTHON): %v", python, err)
	}
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(python, "-m", "entitlements_sidecar.cli", "serve", "--grpc-address", s.address,
		"--http-address", s.http, "--catalog-path", s.catalog, "--catalog-poll-seconds", "0.05",
		"--shutdown-grace-seconds", "2", "--log-level", "warning")
	s.cmd.Env = withoutSidecarSettings(os.Environ())
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	eventually(s.t, 20*time.Second, "the sidecar listening", func() bool {
		conn, err := net.DialTimeout("tcp", s.address, 100*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

func (s *sidecar) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = s.cmd.Process.Wait()
}

func (s *sidecar) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = s.cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.kill()
		s.t.Errorf("the sidecar did not stop within 15 s:\n%s", s.log)
	}
}

// edit changes the catalog the sidecar polls.
func (s *sidecar) edit(old, replacement string) {
	s.t.Helper()
	raw, err := os.ReadFile(s.catalog)
	if err != nil {
		s.t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(old)) {
		s.t.Fatalf("%q is not in the catalog", old)
	}
	if err := os.WriteFile(s.catalog, bytes.Replace(raw, []byte(old), []byte(replacement), 1), 0o644); err != nil {
		s.t.Fatal(err)
	}
	later := time.Now().Add(time.Second) // a new mtime even within the file system's resolution
	if err := os.Chtimes(s.catalog, later, later); err != nil {
		s.t.Fatal(err)
	}
}

func withoutSidecarSettings(env []string) []string {
	kept := env[:0:0]
	for _, item := range env {
		if !strings.HasPrefix(item, "ENTITLEMENTS_") {
			kept = append(kept, item)
		}
	}
	return kept
}

// eventually polls condition every 10 ms until it holds, or fails the test after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, condition func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !condition() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
