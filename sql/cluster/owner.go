package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// serverUserName is the OS user initdb and postgres run as when we are root
// (PostgreSQL refuses to run as root). Debian's postgresql package creates it.
const serverUserName = "postgres"

// osUser is the identity the server processes run as when it differs from
// ours, i.e. when we are root.
type osUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups, as a login would have them
}

// serverUser returns the user to run initdb and postgres as, or nil when
// they run as the current user (we are not root).
func serverUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		return nil, fmt.Errorf("cluster: running as root, so PostgreSQL must run as the OS user %q, which cannot be found (%v); install the postgresql package (apt-get install -y postgresql) or run as a non-root user", serverUserName, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("cluster: user %s: bad uid %q", serverUserName, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("cluster: user %s: bad gid %q", serverUserName, u.Gid)
	}
	ou := &osUser{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.ParseUint(s, 10, 32); err == nil {
				ou.groups = append(ou.groups, uint32(g))
			}
		}
	}
	return ou, nil
}

// credential is what the server processes get as SysProcAttr.Credential.
func (u *osUser) credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}
}

func (u *osUser) inGroup(gid uint32) bool {
	if gid == u.gid {
		return true
	}
	for _, g := range u.groups {
		if g == gid {
			return true
		}
	}
	return false
}

// canSearch reports whether u may traverse the directory described by fi
// (the x bit of the permission class that applies to u, as the kernel
// decides it: owner class first, then group, then other).
func (u *osUser) canSearch(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return perm&0o100 != 0
	case u.inGroup(st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// checkReachable fails with one plain sentence when u cannot traverse some
// existing ancestor of dir. initdb would otherwise die with
// "could not change directory" or "Permission denied" deep in its output.
// Symlinks are resolved first, because the kernel checks the directories
// of the target path.
func checkReachable(u *osUser, dir string) error {
	// dir itself is not checked: prepareDataDir hands it to u.
	existing := filepath.Dir(dir)
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return nil
		}
		existing = parent
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", existing, err)
	}
	p := string(filepath.Separator)
	for _, part := range append([]string{""}, strings.Split(strings.TrimPrefix(real, p), p)...) {
		p = filepath.Join(p, part)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("cluster: %s: %w", p, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("cluster: %s is not a directory, so it cannot hold the cluster directory %s", p, dir)
		}
		if !u.canSearch(fi) {
			owner := "uid " + strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Uid), 10)
			if ou, err := user.LookupId(strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Uid), 10)); err == nil {
				owner = ou.Username
			}
			return fmt.Errorf("cluster: the %s user, which PostgreSQL runs as because we are root, cannot reach %s because the directory %s (mode %04o, owner %s) is not searchable by it; choose a data directory elsewhere (e.g. /var/lib/storage) or run `chmod o+x %s`",
				u.name, dir, p, fi.Mode().Perm(), owner, p)
		}
	}
	return nil
}

// prepareDataDir makes sure dir exists, belongs to the user the server runs
// as and has mode 0700 (postgres refuses a data directory that is group- or
// world-writable or owned by someone else). Missing parents are created
// with mode 0755 so that the server user can traverse them.
func prepareDataDir(u *osUser, dir string) error {
	if err := mkdirParents(filepath.Dir(dir)); err != nil {
		return err
	}
	if u != nil {
		// The parents now all exist; check again in case we just made one
		// that a restrictive umask or an ACL-less setup left unreachable.
		if err := checkReachable(u, dir); err != nil {
			return err
		}
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	case err != nil:
		return fmt.Errorf("cluster: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("cluster: %s exists and is not a directory", dir)
	}
	initialized := fileExists(filepath.Join(dir, "PG_VERSION"))
	if u != nil {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != u.uid {
			if initialized {
				// Chowning an existing cluster recursively behind the
				// user's back is too surprising; say what to do.
				return fmt.Errorf("cluster: the cluster in %s is owned by uid %d, but PostgreSQL runs as %s (uid %d) because we are root; run `chown -R %s: %s`",
					dir, st.Uid, u.name, u.uid, u.name, dir)
			}
			if err := os.Chown(dir, int(u.uid), int(u.gid)); err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
		}
	}
	if !initialized {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	return nil
}

// mkdirParents is os.MkdirAll(dir, 0755) that also forces 0755 on the
// directories it creates, whatever the umask.
func mkdirParents(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("cluster: %s is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirParents(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// makeOwnedDir creates dir (mode 0700) if missing and hands it to u.
func makeOwnedDir(u *osUser, dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cluster: %w", err)
	}
	return chownTo(u, dir)
}

// chownTo gives path to u; a no-op when u is nil (not root).
func chownTo(u *osUser, path string) error {
	if u == nil {
		return nil
	}
	if err := os.Chown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Reachable reports, with the same plain sentence Start would give, whether the cluster
// directory dir is reachable by the user PostgreSQL runs as. Always nil when we are not root.
// Callers use it to choose another place before starting.
func Reachable(dir string) error {
	u, err := serverUser()
	if err != nil || u == nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	return checkReachable(u, abs)
}
