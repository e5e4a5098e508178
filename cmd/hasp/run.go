package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/client"
	"github.com/hasplock/hasp/lock"
)

// childExit carries the command's exit code out of `hasp run`.
type childExit struct{ code int }

func (e childExit) Error() string { return "command exited with status " + strconv.Itoa(e.code) }

func newRun(f *clientFlags) *cobra.Command {
	var (
		ttl, wait, grace, delay time.Duration
		owner, metadata         string
		permits                 int
	)
	cmd := &cobra.Command{
		Use:   "run NAME [flags] -- COMMAND [ARGS...]",
		Short: "Run a command while holding a lock, renewing it in the background",
		Long: `Run acquires NAME (waiting up to --wait), runs COMMAND with the lock held and
renewed every TTL/3, and releases the lock when COMMAND exits. COMMAND sees
HASP_LOCK_NAME, HASP_FENCING_TOKEN and HASP_LEASE_ID in its environment; pass
the fencing token to whatever the lock protects.

If the lease is lost (or about to be: it could not be renewed in time),
COMMAND gets SIGTERM, then SIGKILL after --grace, and run exits 76. SIGINT
and SIGTERM sent to run are passed on to COMMAND.

` + exitCodesHelp,
		Example: `  hasp run nightly -- sh -c 'echo "token $HASP_FENCING_TOKEN"; ./report.sh'
  hasp run db-migrate --wait 5m --ttl 1m -- ./migrate up
  hasp run payment-api --permits 5 --wait 1m -- ./charge.sh   # at most 5 at once
  hasp run orders-writer --lock-delay 10s -- ./writer          # a crashed writer's lock stays 10s more`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return usageError{errors.New("usage: hasp run NAME [flags] -- COMMAND [ARGS...]")}
			}
			c, err := f.client(cmd.Context())
			if err != nil {
				return err
			}
			return runLocked(cmd.Context(), c, args[0], args[1:], grace, wait+f.timeout, nil, false,
				client.WithTTL(ttl), client.WithWait(wait), client.WithOwner(owner), client.WithMetadata(metadata),
				client.WithPermits(permits), client.WithLockDelay(delay))
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", client.DefaultTTL, "lease time-to-live (1s to 1h); renewed every ttl/3")
	cmd.Flags().DurationVar(&wait, "wait", 0, "how long to wait for a held lock")
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL when the lease is lost")
	cmd.Flags().StringVar(&owner, "owner", defaultOwner(), "a label for the holder, shown by status")
	cmd.Flags().StringVar(&metadata, "metadata", "", "up to 1 KiB stored with the lease")
	permitFlags(cmd, &permits, &delay)
	return cmd
}

func defaultOwner() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

// runLocked acquires name, runs argv while the lease is held, and releases
// it. env, when not nil, adds to the command's environment. On a loss the
// command gets SIGTERM, then SIGKILL after grace or, with capKill, just
// before the lease can end if that comes first.
func runLocked(ctx context.Context, c *client.Client, name string, argv []string, grace, acquireTimeout time.Duration, env []string, capKill bool, opts ...client.AcquireOption) error {
	actx, cancel := context.WithTimeout(ctx, acquireTimeout)
	l, err := c.Acquire(actx, name, opts...)
	cancel()
	if err != nil {
		return heldMessage(err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = l.Release(rctx)
	}()

	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.Env = append(os.Environ(),
		"HASP_LOCK_NAME="+name,
		"HASP_FENCING_TOKEN="+strconv.FormatInt(l.Token(), 10),
		"HASP_LEASE_ID="+l.ID(),
	)
	child.Env = append(child.Env, env...)
	if err := child.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", argv[0], err)
	}
	waited := make(chan error, 1)
	go func() { waited <- child.Wait() }()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var lost error
	var kill <-chan time.Time
	done := l.Done()
	for {
		select {
		case s := <-sigs:
			_ = child.Process.Signal(s)
		case <-done:
			done = nil // closed for good: handle it once
			if lost == nil && !errors.Is(l.Err(), client.ErrReleased) {
				lost = l.Err()
				fmt.Fprintf(os.Stderr, "hasp: lease on %s lost (%v): terminating the command\n", name, lost)
				_ = child.Process.Signal(syscall.SIGTERM)
				d := grace
				if capKill {
					// Kill it before the lease can end at the latest (its
					// safety deadline plus margin, by this process's clock),
					// leaving room for a late timer on a loaded host, or a
					// container throttled for part of a 100 ms CPU period.
					m := l.SafetyMargin()
					d = max(min(d, time.Until(l.Deadline().Add(m-max(100*time.Millisecond, m/4)))), 0)
				}
				kill = time.After(d)
			}
		case <-kill:
			_ = child.Process.Kill()
		case err := <-waited:
			if lost != nil {
				return fmt.Errorf("%w", lost)
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return childExit{128 + int(ws.Signal())}
				}
				return childExit{ee.ExitCode()}
			}
			if err != nil {
				return err
			}
			// The command succeeded; a lease lost just now means its work
			// may not have been protected to the end.
			if e := l.Err(); e != nil && errors.Is(e, lock.ErrLeaseLost) {
				return e
			}
			return nil
		}
	}
}
