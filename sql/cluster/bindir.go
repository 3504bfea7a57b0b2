package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// debianRoot is where Debian and Ubuntu install one directory per
// PostgreSQL major version (/usr/lib/postgresql/15/bin, ...). Those
// directories are not on PATH, which is why discovery falls back to them.
const debianRoot = "/usr/lib/postgresql"

// errNoBinaries is returned by FindBinDir when no server binaries exist.
// It is one line and names the install command, because it is what a user
// sees on a fresh machine.
var errNoBinaries = errors.New("cluster: PostgreSQL server binaries (initdb, postgres) not found on PATH, via pg_config or in " +
	debianRoot + "/*/bin; install them with: apt-get install -y postgresql")

// FindBinDir returns the directory holding the PostgreSQL server binaries
// initdb and postgres. It tries, in order:
//
//  1. `postgres` and `initdb` on PATH, with symlinks resolved, so that a link
//     such as /usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres
//     yields the real directory (postgres locates its share directory
//     relative to its real location, and both programs must come from the
//     same installation). Shell-script wrappers (a file starting with "#!")
//     are skipped: they may choose a version on their own and they stand
//     between us and the process we signal.
//  2. `pg_config --bindir`, if that directory really holds both programs
//     (libpq-dev's pg_config reports /usr/bin, which does not).
//  3. the newest /usr/lib/postgresql/<version>/bin.
func FindBinDir() (string, error) {
	if dir, ok := binDirFromPath(); ok {
		return dir, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); dir != "" && hasServerBinaries(dir) {
			return resolveDir(dir), nil
		}
	}
	if dir, ok := newestDebianBinDir(); ok {
		return dir, nil
	}
	return "", errNoBinaries
}

// binDirFromPath looks up postgres and initdb on PATH and returns their
// common real directory.
func binDirFromPath() (string, bool) {
	var dir string
	for _, name := range []string{"postgres", "initdb"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", false
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil || isScript(real) {
			return "", false
		}
		d := filepath.Dir(real)
		if dir != "" && d != dir {
			return "", false
		}
		dir = d
	}
	if !hasServerBinaries(dir) {
		return "", false
	}
	return dir, true
}

// newestDebianBinDir returns the bin directory of the highest PostgreSQL
// major version under /usr/lib/postgresql.
func newestDebianBinDir() (string, bool) {
	entries, err := os.ReadDir(debianRoot)
	if err != nil {
		return "", false
	}
	var versions []string
	for _, e := range entries {
		if _, err := strconv.ParseFloat(e.Name(), 64); err == nil && hasServerBinaries(debianBinDir(e.Name())) {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) == 0 {
		return "", false
	}
	// Numeric, not lexical: "9.6" < "15".
	sort.Slice(versions, func(i, j int) bool {
		a, _ := strconv.ParseFloat(versions[i], 64)
		b, _ := strconv.ParseFloat(versions[j], 64)
		return a < b
	})
	return debianBinDir(versions[len(versions)-1]), true
}

func debianBinDir(version string) string {
	return filepath.Join(debianRoot, version, "bin")
}

// hasServerBinaries reports whether dir holds executable initdb and postgres.
func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

func resolveDir(dir string) string {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		return real
	}
	return dir
}

func isScript(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 2)
	n, _ := f.Read(head)
	return bytes.Equal(head[:n], []byte("#!"))
}

// serverMajorVersion returns the major version of the postgres binary in
// binDir as PG_VERSION spells it ("15", or "9.6" for old releases).
func serverMajorVersion(binDir string) (string, error) {
	// `postgres -V` is allowed as root: the root check comes after it.
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "-V").Output()
	if err != nil {
		return "", fmt.Errorf("cluster: %s -V: %w", filepath.Join(binDir, "postgres"), err)
	}
	// "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
	s := string(out)
	if i := strings.Index(s, ")"); i >= 0 {
		s = s[i+1:]
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return "", fmt.Errorf("cluster: cannot parse the output of postgres -V: %q", strings.TrimSpace(string(out)))
	}
	parts := strings.Split(fields[0], ".")
	if major, err := strconv.Atoi(parts[0]); err == nil && major < 10 && len(parts) > 1 {
		return parts[0] + "." + parts[1], nil
	}
	// "16beta1", "17devel": the leading digits.
	major := parts[0]
	for i, r := range major {
		if r < '0' || r > '9' {
			major = major[:i]
			break
		}
	}
	if major == "" {
		return "", fmt.Errorf("cluster: cannot parse the output of postgres -V: %q", strings.TrimSpace(string(out)))
	}
	return major, nil
}
