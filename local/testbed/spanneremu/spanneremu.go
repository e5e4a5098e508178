// Package spanneremu starts the official Cloud Spanner emulator (Debian
// package google-cloud-cli-spanner-emulator, on the machine image) on a
// loopback port, and creates instances and databases in it. `make run-gcp`
// and the Spanner tests use it; it is never used in production.
package spanneremu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	database "cloud.google.com/go/spanner/admin/database/apiv1"
	"cloud.google.com/go/spanner/admin/database/apiv1/databasepb"
	instance "cloud.google.com/go/spanner/admin/instance/apiv1"
	"cloud.google.com/go/spanner/admin/instance/apiv1/instancepb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Candidates are the places the emulator's binary is looked for, after the
// HASP_SPANNER_EMULATOR variable and PATH.
var Candidates = []string{
	"/usr/lib/google-cloud-sdk/bin/cloud_spanner_emulator/emulator_main",
	"/usr/share/google-cloud-sdk/bin/cloud_spanner_emulator/emulator_main",
	"/google-cloud-sdk/bin/cloud_spanner_emulator/emulator_main",
}

// ErrNotInstalled is returned by Find and Start when no emulator binary is
// found.
var ErrNotInstalled = errors.New("spanneremu: the Cloud Spanner emulator (emulator_main, Debian package google-cloud-cli-spanner-emulator) is not installed")

// Find returns the path of the emulator's binary.
func Find() (string, error) {
	if p := os.Getenv("HASP_SPANNER_EMULATOR"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("emulator_main"); err == nil {
		return p, nil
	}
	for _, p := range Candidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Emulator is a running emulator process.
type Emulator struct {
	// Addr is its gRPC address, host:port, for SPANNER_EMULATOR_HOST.
	Addr string

	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the emulator on a free port of 127.0.0.1 and waits until it
// accepts connections. Its output goes to logs (may be nil).
func Start(ctx context.Context, logs io.Writer) (*Emulator, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "--host_port", addr)
	cmd.Dir = filepath.Dir(bin)
	cmd.Stdout, cmd.Stderr = logs, logs
	// It stays in our process group, so that whoever stops us stops it,
	// and dies with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spanneremu: start %s: %w", bin, err)
	}
	e := &Emulator{Addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(e.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return e, nil
		}
		select {
		case <-e.done:
			return nil, fmt.Errorf("spanneremu: the emulator exited before it was ready")
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("spanneremu: the emulator did not listen on %s within 30s", addr)
		}
	}
}

// Stop kills the emulator and waits for it to exit.
func (e *Emulator) Stop() {
	_ = e.cmd.Process.Kill()
	<-e.done
}

// ClientOptions are the options that point a Spanner client at the
// emulator, without credentials.
func (e *Emulator) ClientOptions() []option.ClientOption {
	return ClientOptions(e.Addr)
}

// ClientOptions are the options that point a Spanner client at an emulator
// listening on addr.
func ClientOptions(addr string) []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// CreateDatabase creates the instance (with the emulator's instance
// config) and the database with ddl, both if missing, and returns the
// database's name "projects/P/instances/I/databases/D".
func CreateDatabase(ctx context.Context, addr, project, inst, db string, ddl []string) (string, error) {
	opts := ClientOptions(addr)
	ic, err := instance.NewInstanceAdminClient(ctx, opts...)
	if err != nil {
		return "", err
	}
	defer ic.Close()
	op, err := ic.CreateInstance(ctx, &instancepb.CreateInstanceRequest{
		Parent:     "projects/" + project,
		InstanceId: inst,
		Instance: &instancepb.Instance{
			Config:      "projects/" + project + "/instanceConfigs/emulator-config",
			DisplayName: inst,
			NodeCount:   1,
		},
	})
	if err == nil {
		_, err = op.Wait(ctx)
	}
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return "", fmt.Errorf("spanneremu: create instance %s: %w", inst, err)
	}
	dc, err := database.NewDatabaseAdminClient(ctx, opts...)
	if err != nil {
		return "", err
	}
	defer dc.Close()
	name := fmt.Sprintf("projects/%s/instances/%s/databases/%s", project, inst, db)
	dop, err := dc.CreateDatabase(ctx, &databasepb.CreateDatabaseRequest{
		Parent:          "projects/" + project + "/instances/" + inst,
		CreateStatement: "CREATE DATABASE `" + strings.ReplaceAll(db, "`", "") + "`",
		ExtraStatements: ddl,
	})
	if err == nil {
		_, err = dop.Wait(ctx)
	}
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return "", fmt.Errorf("spanneremu: create database %s: %w", name, err)
	}
	return name, nil
}
