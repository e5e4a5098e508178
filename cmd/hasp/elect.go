package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/client"
	"github.com/hasplock/hasp/lock"
)

func newElect(f *clientFlags) *cobra.Command {
	var (
		ttl, wait, grace time.Duration
		owner, value     string
	)
	cmd := &cobra.Command{
		Use:   "elect NAME --value V [flags] -- COMMAND [ARGS...]",
		Short: "Campaign for leadership of an election and run a command only while leader",
		Long: `Elect campaigns for the election NAME (a lock name) with the leader's value V
(stored as the lease's metadata, shown by observe and status), waiting until it
wins (or up to --wait), runs COMMAND while it leads, renewing every TTL/3, and
resigns when COMMAND exits. COMMAND sees HASP_LOCK_NAME, HASP_FENCING_TOKEN,
HASP_LEASE_ID and HASP_LEADER_VALUE in its environment.

If leadership is lost (or about to be: it could not be renewed in time),
COMMAND gets SIGTERM, then SIGKILL after --grace or just before the lease can
end (by 100 ms or a quarter of the safety margin, whichever is more),
whichever comes first, and elect exits 76. The default safety margin
(TTL/10, at least 250 ms) is what the command has to stop in; raise --ttl for
commands that need longer.

` + exitCodesHelp,
		Example: `  hasp elect scheduler --value "$(hostname):8080" -- ./scheduler
  hasp elect primary --value db-1 --ttl 10s --grace 1s -- ./serve-primary`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return usageError{errors.New("usage: hasp elect NAME --value V [flags] -- COMMAND [ARGS...]")}
			}
			if !cmd.Flags().Changed("value") {
				return usageError{errors.New("--value is required: the leader's value, e.g. its address")}
			}
			c, err := f.client(cmd.Context())
			if err != nil {
				return err
			}
			opts := []client.AcquireOption{client.WithTTL(ttl), client.WithOwner(owner), client.WithMetadata(value)}
			timeout := time.Duration(math.MaxInt64)
			if wait > 0 {
				opts = append(opts, client.WithWait(wait))
				timeout = wait + f.timeout
			}
			return runLocked(cmd.Context(), c, args[0], args[1:], grace, timeout, []string{"HASP_LEADER_VALUE=" + value}, true, opts...)
		},
	}
	cmd.Flags().StringVar(&value, "value", "", "the leader's value (up to 1 KiB), e.g. its address (required)")
	cmd.Flags().DurationVar(&ttl, "ttl", 15*time.Second, "leadership lease time-to-live (1s to 1h); renewed every ttl/3")
	cmd.Flags().DurationVar(&wait, "wait", 0, "how long to campaign before giving up (0: until interrupted)")
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL when leadership is lost (capped by the lease's end)")
	cmd.Flags().StringVar(&owner, "owner", defaultOwner(), "a label for the leader, shown by status")
	return cmd
}

// changeLine is one line of `hasp observe` and `hasp list --json`.
type changeLine struct {
	Name         string `json:"name"`
	Held         bool   `json:"held"`
	Value        string `json:"value,omitempty"`
	Owner        string `json:"owner,omitempty"`
	FencingToken int64  `json:"fencing_token,omitempty"`
	ExpiresAt    string `json:"expires_at,omitempty"`
}

func newObserve(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "observe NAME",
		Short: "Print each change of an election's leader (or a lock's holder) as a JSON line",
		Long: `Observe prints the current leader of NAME, then each change, one JSON object a
line: {"name", "held", "value", "owner", "fencing_token", "expires_at"} (value is
the leader's value, the lease's metadata; "held": false when nobody leads). It
runs until interrupted (exit 0), retrying through unavailability.`,
		Example: `  hasp observe scheduler | jq -r .value`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := lock.ValidateName(args[0]); err != nil {
				return err
			}
			return observe(cmd.Context(), c, args[0], cmd.OutOrStdout())
		},
	}
}

func observe(ctx context.Context, c *client.Client, name string, w io.Writer) error {
	enc := json.NewEncoder(w)
	for ch := range c.Observe(ctx, name) {
		line := changeLine{Name: name, Held: ch.Held}
		if ch.Held {
			line.Value, line.Owner, line.FencingToken, line.ExpiresAt = ch.Value, ch.Owner, ch.Token, lock.FormatTime(ch.ExpiresAt)
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil // interrupted
}

func newList(f *clientFlags) *cobra.Command {
	var (
		prefix string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "list --prefix P",
		Short: "List the held locks whose names start with a prefix",
		Long: `List prints every lock held under --prefix ("" lists all), following the
service's pages (--limit locks a request) to the end: one line per lock, or with
--json one JSON object a line {"name", "held", "value", "owner", "fencing_token",
"expires_at"} (value is the lease's metadata). Order is by name on etcd, Spanner
and memory, and the store's own order on DynamoDB and Cosmos DB.`,
		Example: `  hasp list --prefix jobs/ --json`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := f.call(cmd, 0)
			if err != nil {
				return err
			}
			defer cancel()
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			page := ""
			for {
				items, next, err := c.List(ctx, prefix, limit, page)
				if err != nil {
					return err
				}
				for _, st := range items {
					if f.asJSON {
						err = enc.Encode(changeLine{Name: st.Name, Held: true, Value: st.Holder.Metadata, Owner: st.Holder.Owner,
							FencingToken: st.Holder.FencingToken, ExpiresAt: lock.FormatTime(st.Holder.ExpiresAt)})
					} else {
						_, err = fmt.Fprintf(w, "%s\ttoken %d\towner %q\tuntil %s\n", st.Name, st.Holder.FencingToken, st.Holder.Owner, lock.FormatTime(st.Holder.ExpiresAt))
					}
					if err != nil {
						return err
					}
				}
				if next == "" {
					return nil
				}
				page = next
			}
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "list the locks whose names start with this")
	cmd.Flags().IntVar(&limit, "limit", lock.DefaultListLimit, "locks per request (1 to 1000)")
	return cmd
}
