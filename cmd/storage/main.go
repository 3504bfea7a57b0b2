// Command storage is the Supabase-Storage-compatible object store whose brain is PostgreSQL.
//
//	storage serve     run the HTTP server (migrating the database first)
//	storage migrate   apply pending migrations and print the schema version
//	storage keys      print ANON_KEY=… and SERVICE_ROLE_KEY=… for the configured secret
//
// Configuration comes from the environment; `storage serve --help` lists every variable.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `storage: a Supabase-Storage-compatible object store whose brain is PostgreSQL.

Usage:
  storage serve     run the HTTP server; applies pending migrations first
  storage migrate   apply pending migrations and print the schema version
  storage keys      print ANON_KEY=<jwt> and SERVICE_ROLE_KEY=<jwt> (eval "$(storage keys)")
  storage help      this text

With no DATABASE_URL, serve and migrate start a private PostgreSQL cluster under
STORAGE_DATA_DIR (default ./data) using the PostgreSQL server binaries on this machine.
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code: 0 success, 1 failure, 2 usage.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage+"\n")
		printEnvHelp(stdout)
		return 0
	}
	commands := map[string]func(context.Context, Config, io.Writer, io.Writer) error{
		"serve":   serve,
		"migrate": migrateCmd,
		"keys":    keysCmd,
	}
	fn, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "storage: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	for _, a := range rest {
		if a == "-h" || a == "--help" || a == "help" {
			fmt.Fprintf(stdout, "Usage: storage %s\n\n", cmd)
			printEnvHelp(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "storage %s: unexpected argument %q (configuration comes from the environment; see storage %s --help)\n", cmd, a, cmd)
		return 2
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "storage: configuration: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := fn(ctx, cfg, stdout, stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "storage %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
