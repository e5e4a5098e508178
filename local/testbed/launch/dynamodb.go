package launch

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Moto starts moto (on the machine image) on a free loopback port and
// returns its endpoint URL. It serves one request at a time
// (scripts/moto_serial.py): moto_server's threads can both pass the same
// condition of two concurrent conditional writes, which DynamoDB never lets
// happen.
func Moto(t testing.TB) string {
	t.Helper()
	_, err := exec.LookPath("moto_server")
	Require(t, err == nil, "moto_server", "it comes with the machine image: pip package moto[server]")
	py, err := exec.LookPath("python3")
	Require(t, err == nil, "python3 with moto", "it comes with the machine image")
	port := FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	script := filepath.Join(ModuleRoot(t), "local", "testbed", "launch", "scripts", "moto_serial.py")
	StartProc(t, "moto", nil, HTTPReady(url+"/moto-api/"), py, script, "127.0.0.1", strconv.Itoa(port))
	return url
}

// Dynalite starts dynalite (npm, installed by `make deps`) on a free
// loopback port, through scripts/dynalite_server.js (which keeps a client's
// aborted request from killing the server). With dir it keeps its data
// there, so Restart keeps it.
func Dynalite(t testing.TB, dir string) (string, *Proc) {
	t.Helper()
	_, ok := NodeModule(t, "dynalite/index.js")
	Require(t, ok, "dynalite", "run `make deps` (npm ci)")
	node, err := exec.LookPath("node")
	Require(t, err == nil, "node", "Node.js comes with the machine image")
	port := FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	script := filepath.Join(ModuleRoot(t), "local", "testbed", "launch", "scripts", "dynalite_server.js")
	args := []string{node, script, "127.0.0.1", strconv.Itoa(port)}
	if dir != "" {
		args = append(args, dir)
	}
	p := StartProc(t, "dynalite", nil, HTTPReady(url), args...)
	return url, p
}
