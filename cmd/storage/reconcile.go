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

// reconcileFlags are the flags of storage reconcile and storage check.
type reconcileFlags struct {
	// check: storage check, the report only, whose exit status says whether the invariants
	// hold (no orphan blob, no row whose blob is missing), for operators and monitoring.
	check bool
	apply bool
	grace time.Duration
}

func (f *reconcileFlags) declare(fs *flag.FlagSet) {
	if !f.check {
		fs.BoolVar(&f.apply, "apply", false, "repair: end stale uploads, remove leftovers, delete orphan blobs (default: report only)")
	}
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

// run reports one line per finding and a summary. For reconcile, findings are not failures
// (exit 0), failed repairs are; for check, a broken invariant is. Stale uploads and leftovers
// break none: the blob of an upload in flight is referenced by its entry, and the collector
// removes both on its own.
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
	name := "reconcile"
	if f.check {
		name = "check"
	}
	fmt.Fprintf(stdout, "%s (grace %s): %s\n", name, f.grace, r.Summary(f.apply))
	if f.check && r.MissingBlobs+r.Orphans > 0 {
		return fmt.Errorf("the invariants do not hold: %d orphan blobs, %d rows whose blob is missing", r.Orphans, r.MissingBlobs)
	}
	if r.Errors > 0 {
		return fmt.Errorf("%d repairs failed (see above)", r.Errors)
	}
	return nil
}
