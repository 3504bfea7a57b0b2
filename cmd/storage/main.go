// Command storage is the Supabase-Storage-compatible object store whose brain is PostgreSQL.
//
//	storage serve     run the HTTP server (migrating the database first)
//	storage migrate   apply pending migrations and print the schema version
//	storage keys      print ANON_KEY=… and SERVICE_ROLE_KEY=… for the configured secret
//	storage reconcile compare the blob store with the database, and repair with --apply
//	storage check     reconcile's report; exit status 1 when a blob or row is amiss
//
// Configuration comes from the environment; `storage serve --help` lists every variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `storage: a Supabase-Storage-compatible object store whose brain is PostgreSQL.

Usage:
  storage serve      run the HTTP server; applies pending migrations first
  storage migrate    apply pending migrations and print the schema version
  storage keys       print ANON_KEY=<jwt> and SERVICE_ROLE_KEY=<jwt> (eval "$(storage keys)")
  storage reconcile [--apply] [--grace 1h]
                     compare the blob store with the database: report (and with --apply
                     repair) blobs nothing references, leftovers of interrupted uploads, and
                     rows whose blob is missing (reported only)
  storage check [--grace 1h]
                     reconcile's report, safe on a live deployment; exits 1 when an
                     invariant is broken (a stored blob nothing references, or a row whose
                     blob is missing)
  storage help       this text

With no DATABASE_URL, serve, migrate, reconcile and check start a private PostgreSQL cluster under
STORAGE_DATA_DIR (default ./data) using the PostgreSQL server binaries on this machine; only
one of them can use it at a time.
`

// command is one subcommand. flags, when set, declares its flags; configuration otherwise
// comes from the environment only.
type command struct {
	run   func(context.Context, Config, io.Writer, io.Writer) error
	flags func(*flag.FlagSet)
}

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code: 0 success, 1 failure, 2 usage.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name, rest := args[0], args[1:]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Fprint(stdout, usage+"\n")
		printEnvHelp(stdout)
		return 0
	}
	var rec reconcileFlags
	chk := reconcileFlags{check: true}
	commands := map[string]command{
		"serve":     {run: serve},
		"migrate":   {run: migrateCmd},
		"keys":      {run: keysCmd},
		"reconcile": {run: rec.run, flags: rec.declare},
		"check":     {run: chk.run, flags: chk.declare},
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "storage: unknown command %q\n\n%s", name, usage)
		return 2
	}
	fs := flag.NewFlagSet("storage "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	help := func() {
		fmt.Fprintf(stdout, "Usage: storage %s", name)
		fs.VisitAll(func(f *flag.Flag) {
			if arg, _ := flag.UnquoteUsage(f); arg != "" {
				fmt.Fprintf(stdout, " [--%s %s]", f.Name, arg)
			} else {
				fmt.Fprintf(stdout, " [--%s]", f.Name)
			}
		})
		fmt.Fprint(stdout, "\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fmt.Fprint(stdout, "\n")
		printEnvHelp(stdout)
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help()
			return 0
		}
		fmt.Fprintf(stderr, "storage %s: %v (see storage %s --help)\n", name, err, name)
		return 2
	}
	if fs.NArg() > 0 {
		if a := fs.Arg(0); a == "help" {
			help()
			return 0
		}
		fmt.Fprintf(stderr, "storage %s: unexpected argument %q (configuration comes from the environment; see storage %s --help)\n", name, fs.Arg(0), name)
		return 2
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "storage: configuration: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, cfg, stdout, stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "storage %s: %v\n", name, err)
		return 1
	}
	return 0
}
