package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pgstorage/storage/lifecycle"
)

// reconcileFlags are storage reconcile's flags.
type reconcileFlags struct {
	apply bool
	grace time.Duration
}

func (f *reconcileFlags) declare(fs *flag.FlagSet) {
	fs.BoolVar(&f.apply, "apply", false, "repair: end stale uploads, remove leftovers, delete orphan blobs (default: report only)")
	f.grace = time.Hour
	fs.Var((*graceFlag)(&f.grace), "grace", "leave alone whatever is younger than this `duration` (uploads in progress)")
}

// graceFlag is a duration flag that refuses negative values while parsing, so a bad value is
// a usage error like any other.
type graceFlag time.Duration

func (g *graceFlag) String() string { return time.Duration(*g).String() }

func (g *graceFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return errors.New("must be a duration of 0 or more, such as 30m or 1h")
	}
	*g = graceFlag(d)
	return nil
}

// run reports one line per finding and a summary; findings are not failures (exit 0), failed
// repairs are.
func (f *reconcileFlags) run(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	blobs, err := openBlobs(ctx, cfg)
	if err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg, stderr, poolAdmin)
	if err != nil {
		return err
	}
	defer db.close()
	r, err := lifecycle.Reconcile(ctx, db.pool, blobs, lifecycle.ReconcileOptions{Grace: f.grace, Apply: f.apply, Out: stdout})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reconcile (grace %s): %s\n", f.grace, r.Summary(f.apply))
	if r.Errors > 0 {
		return fmt.Errorf("%d repairs failed (see above)", r.Errors)
	}
	return nil
}
