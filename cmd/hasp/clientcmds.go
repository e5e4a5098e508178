package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/api/wire"
	"github.com/hasplock/hasp/client"
	"github.com/hasplock/hasp/lock"
)

// Exit codes of the client commands, documented in `hasp --help` and the
// README. `hasp run` otherwise exits with its command's exit code.
const (
	exitOK          = 0
	exitError       = 1  // any other failure
	exitUsage       = 64 // bad flags or arguments (EX_USAGE)
	exitUnavailable = 69 // the service is unreachable or unavailable (EX_UNAVAILABLE)
	exitHeld        = 75 // the lock is held: not acquired in time (EX_TEMPFAIL)
	exitLost        = 76 // the lease was lost (run: the command was terminated)
	exitAuth        = 77 // credentials missing or wrong (EX_NOPERM)
)

const exitCodesHelp = `Exit codes:
  0   success (hasp run: the command's own exit code)
  1   other errors
  64  usage error
  69  service unreachable, unavailable or throttling
  75  lock held: not acquired within --wait
  76  lease lost (hasp run: the command was terminated)
  77  unauthenticated`

// clientFlags are the flags every client command shares.
type clientFlags struct {
	endpoint, token, region string
	sigv4, asJSON           bool
	timeout                 time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	p := cmd.Flags()
	p.StringVar(&f.endpoint, "endpoint", envOr("HASP_ENDPOINT", client.DefaultEndpoint), "hasp endpoint URL (env HASP_ENDPOINT)")
	p.StringVar(&f.token, "token", os.Getenv("HASP_TOKEN"), "bearer token (env HASP_TOKEN)")
	p.BoolVar(&f.sigv4, "sigv4", false, "sign requests with AWS SigV4 (service execute-api) using the default AWS credential chain")
	p.StringVar(&f.region, "region", envOr("AWS_REGION", os.Getenv("AWS_DEFAULT_REGION")), "AWS region for --sigv4 (env AWS_REGION)")
	p.BoolVar(&f.asJSON, "json", false, "print JSON instead of text")
	p.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on each request beyond any --wait")
}

// call returns the client and the context of one command's request: the
// command's own, bounded by the request timeout plus wait.
func (f *clientFlags) call(cmd *cobra.Command, wait time.Duration) (*client.Client, context.Context, context.CancelFunc, error) {
	c, err := f.client(cmd.Context())
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), wait+f.timeout)
	return c, ctx, cancel, nil
}

func (f *clientFlags) client(ctx context.Context) (*client.Client, error) {
	var opts []client.Option
	if f.token != "" {
		opts = append(opts, client.WithBearerToken(f.token))
	}
	if f.sigv4 {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("AWS credentials: %w", err)
		}
		region := f.region
		if region == "" {
			region = cfg.Region
		}
		if region == "" {
			return nil, usageError{errors.New("--sigv4 needs --region or AWS_REGION")}
		}
		opts = append(opts, client.WithSigV4(cfg.Credentials, region))
	}
	return client.New(f.endpoint, opts...)
}

// usageArgs makes an argument check's failure a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// usageError marks errors in how a command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var ue usageError
	var ce childExit
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, lock.ErrHeld), errors.Is(err, lock.ErrPermitsMismatch):
		return exitHeld
	case errors.Is(err, lock.ErrLeaseLost):
		return exitLost
	case errors.Is(err, lock.ErrUnauthenticated):
		return exitAuth
	case errors.Is(err, lock.ErrInvalidArgument):
		return exitUsage
	case errors.Is(err, lock.ErrUnavailable), errors.Is(err, lock.ErrThrottled):
		return exitUnavailable
	}
	return exitError
}

// printLease prints a lease as text, or as the API's lease body.
func printLease(w io.Writer, asJSON bool, l lock.Lease) error {
	if asJSON {
		return json.NewEncoder(w).Encode(wire.FromLease(l))
	}
	_, err := fmt.Fprintf(w, "name:          %s\nfencing_token: %d\nlease_id:      %s\nttl:           %s\nexpires_at:    %s\nowner:         %s\n",
		l.Name, l.FencingToken, l.LeaseID, l.TTL, lock.FormatTime(l.ExpiresAt), l.Owner)
	if err == nil && l.Permits > 1 {
		_, err = fmt.Fprintf(w, "permits:       %d\n", l.Permits)
	}
	if err == nil && l.LockDelay > 0 {
		_, err = fmt.Fprintf(w, "lock_delay:    %s\n", l.LockDelay)
	}
	return err
}

// heldMessage explains a held lock to a person.
func heldMessage(err error) error {
	var (
		h  *lock.HeldError
		mm *lock.PermitsMismatchError
	)
	switch {
	case errors.As(err, &h) && !h.DelayedUntil.IsZero():
		return fmt.Errorf("%w: %q: the lease of owner %q (fencing token %d) expired without a release; its lock-delay runs until %s", lock.ErrHeld, h.Name, h.Holder.Owner, h.Holder.FencingToken, lock.FormatTime(h.DelayedUntil))
	case errors.As(err, &h) && h.Permits > 1:
		return fmt.Errorf("%w: every one of the %d permits of %q is held; the first frees at %s (owner %q, fencing token %d)", lock.ErrHeld, h.Permits, h.Name, lock.FormatTime(h.Holder.FreeAt()), h.Holder.Owner, h.Holder.FencingToken)
	case errors.As(err, &h):
		return fmt.Errorf("%w: %q is held by owner %q (fencing token %d) until %s", lock.ErrHeld, h.Name, h.Holder.Owner, h.Holder.FencingToken, lock.FormatTime(h.Holder.ExpiresAt))
	case errors.As(err, &mm):
		return fmt.Errorf("%w: %q is held with --permits %d, not %d", lock.ErrPermitsMismatch, mm.Name, mm.Permits, mm.Requested)
	}
	return err
}

func newAcquire(f *clientFlags) *cobra.Command {
	var (
		ttl, wait, delay time.Duration
		owner, metadata  string
		permits          int
	)
	cmd := &cobra.Command{
		Use:   "acquire NAME",
		Short: "Acquire a lock once and print the lease (not renewed: see `hasp run`)",
		Example: `  hasp acquire nightly-report --ttl 60s --wait 10s --owner "$(hostname)"
  LEASE=$(hasp acquire nightly-report --json | jq -r .lease_id)
  hasp acquire payment-api --permits 5 --ttl 30s`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := f.call(cmd, wait)
			if err != nil {
				return err
			}
			defer cancel()
			l, err := c.Acquire(ctx, args[0], client.WithTTL(ttl), client.WithWait(wait), client.WithOwner(owner),
				client.WithMetadata(metadata), client.WithAutoRenew(false), client.WithPermits(permits), client.WithLockDelay(delay))
			if err != nil {
				return heldMessage(err)
			}
			// The CLI exits; the lease lives on until its TTL or a release.
			l.Detach()
			return printLease(cmd.OutOrStdout(), f.asJSON, lock.Lease{
				Name: l.Name(), Owner: l.Owner(), LeaseID: l.ID(), FencingToken: l.Token(),
				TTL: l.TTL(), ExpiresAt: l.ExpiresAt(), Metadata: l.Metadata(), Permits: l.Permits(), LockDelay: l.LockDelay(),
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", client.DefaultTTL, "lease time-to-live (1s to 1h)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "how long to wait for a held lock")
	cmd.Flags().StringVar(&owner, "owner", "", "a label for the holder, shown by status")
	cmd.Flags().StringVar(&metadata, "metadata", "", "up to 1 KiB stored with the lease")
	permitFlags(cmd, &permits, &delay)
	return cmd
}

// permitFlags registers --permits and --lock-delay.
func permitFlags(cmd *cobra.Command, permits *int, delay *time.Duration) {
	cmd.Flags().IntVar(permits, "permits", 1, "take one of N permits of a semaphore (1 to 1000; 1 is a mutex); every holder must use the same N")
	cmd.Flags().DurationVar(delay, "lock-delay", 0, "if the lease expires without a release, keep the lock (this permit) unavailable this much longer (up to 1m)")
}

func newRenew(f *clientFlags) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:     "renew NAME LEASE_ID",
		Short:   "Renew a lease; prints it with its new expiry",
		Example: `  hasp renew nightly-report "$LEASE" --ttl 60s`,
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := f.call(cmd, 0)
			if err != nil {
				return err
			}
			defer cancel()
			l, err := c.RenewLease(ctx, args[0], args[1], ttl)
			if err != nil {
				return err
			}
			return printLease(cmd.OutOrStdout(), f.asJSON, l)
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "new time-to-live (default: the lease's)")
	return cmd
}

func newRelease(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "release NAME LEASE_ID",
		Short:   "Release a lease",
		Example: `  hasp release nightly-report "$LEASE"`,
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := f.call(cmd, 0)
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.ReleaseLease(ctx, args[0], args[1]); err != nil {
				return err
			}
			if f.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"name": args[0], "released": true})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "released %s\n", args[0])
			return err
		},
	}
}

func newStatus(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "status NAME",
		Short:   "Show who holds a lock",
		Example: `  hasp status nightly-report --json`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := f.call(cmd, 0)
			if err != nil {
				return err
			}
			defer cancel()
			st, err := c.Status(ctx, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.asJSON {
				return json.NewEncoder(w).Encode(wire.FromStatus(st))
			}
			return printStatus(w, st)
		},
	}
}

// printStatus prints a lock's status for a person: a mutex's holder, or a
// semaphore's permits, holders and lock-delayed permits.
func printStatus(w io.Writer, st lock.Status) error {
	line := func(h lock.Holder) string {
		return fmt.Sprintf("owner %q, fencing token %d, until %s (in %s)", h.Owner, h.FencingToken,
			lock.FormatTime(h.ExpiresAt), time.Until(h.ExpiresAt).Round(time.Millisecond))
	}
	var err error
	switch {
	case st.Semaphore():
		_, err = fmt.Fprintf(w, "%s: %d of %d permits held\n", st.Name, len(st.Holders), st.Permits)
		for _, h := range st.Holders {
			if err == nil {
				_, err = fmt.Fprintf(w, "  held by %s\n", line(h))
			}
		}
		for _, h := range st.Delayed {
			if err == nil {
				_, err = fmt.Fprintf(w, "  unavailable until %s: the lease of owner %q (fencing token %d) expired without a release (lock-delay %s)\n",
					lock.FormatTime(h.FreeAt()), h.Owner, h.FencingToken, h.LockDelay)
			}
		}
	case !st.Held:
		_, err = fmt.Fprintf(w, "%s is free\n", st.Name)
	default:
		_, err = fmt.Fprintf(w, "%s is held by %s\n", st.Name, line(st.Holder))
	}
	return err
}
