// Package cluster runs a private PostgreSQL cluster as a child process,
// using the PostgreSQL server binaries installed on the machine (initdb and
// postgres; on Debian: apt-get install -y postgresql).
//
// It exists so that the product binary (`storage serve` without a
// DATABASE_URL keeps a cluster under <STORAGE_DATA_DIR>/pg that survives
// restarts) and the test harness (a throw-away cluster in a temporary
// directory) need no separately administered database server.
//
// The cluster is deliberately private:
//
//   - it listens only on a unix socket in a directory of its own (by default
//     <Dir>/socket), never on TCP, so a fixed port cannot clash with another
//     server and nothing off the machine can reach it;
//   - local connections are trusted and are made as the superuser
//     "postgres" (see [Cluster.ConnString]);
//   - postgres is a child process, not a pg_ctl daemon, so it cannot outlive
//     the process that started it: it is asked to shut down when that
//     process dies, even by SIGKILL.
//
// PostgreSQL refuses to run as root. When the calling process is root,
// initdb and postgres run as the "postgres" OS user and the cluster
// directory is owned by that user; Start checks beforehand that this user
// can reach the directory at all, because a parent directory such as /root
// (mode 0700) would otherwise make initdb fail with an obscure error.
//
// Typical use:
//
//	c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dataDir, "pg")})
//	if err != nil { ... }
//	defer c.Stop()
//	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
package cluster
