package launch

import (
	"fmt"
	"os/exec"
	"strconv"
	"testing"
)

// Moto starts moto_server (on the machine image) on a free loopback port
// and returns its endpoint URL.
func Moto(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	Require(t, err == nil, "moto_server", "it comes with the machine image: pip package moto[server]")
	port := FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	StartProc(t, "moto_server", nil, HTTPReady(url+"/moto-api/"), bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	return url
}

// Dynalite starts dynalite (npm, installed by `make deps`) on a free
// loopback port. With dir it keeps its data there, so Restart keeps it.
func Dynalite(t testing.TB, dir string) (string, *Proc) {
	t.Helper()
	cli, ok := NodeModule(t, "dynalite/cli.js")
	Require(t, ok, "dynalite", "run `make deps` (npm ci)")
	node, err := exec.LookPath("node")
	Require(t, err == nil, "node", "Node.js comes with the machine image")
	port := FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{node, cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"}
	if dir != "" {
		args = append(args, "--path", dir)
	}
	p := StartProc(t, "dynalite", nil, HTTPReady(url), args...)
	return url, p
}
