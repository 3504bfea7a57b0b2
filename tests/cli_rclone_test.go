package tests

// rclone (Debian's package, `make rclone`) against the real binary: a directory tree of mixed
// sizes synced up to a bucket through the S3 protocol with --checksum (small files as
// PutObject, the large ones as multipart uploads with rclone's own part size), listed back,
// synced down into an empty directory, and compared byte for byte, on each blob backend.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob/s3/s3test"
)

const (
	rcloneInstall = "`make rclone` (or apt-get install -y rclone)"
	rcloneTimeout = 5 * time.Minute // one rclone command; each takes seconds
	rcloneMiB     = 1 << 20
)

// rcloneBinary finds rclone on PATH. It fails, never skips, when rclone is missing, so that a
// machine without it cannot pass the suite unnoticed.
func rcloneBinary(t *testing.T) string {
	t.Helper()
	p, err := osexec.LookPath("rclone")
	if err != nil {
		t.Fatalf("rclone not found on PATH (%v); install it with %s", err, rcloneInstall)
	}
	return p
}

// rcloneFile is one file of the tree: its path (slash-separated), size, and modification
// time (rclone stores it in the object's metadata and restores it on download).
type rcloneFile struct {
	path  string
	size  int64
	mtime time.Time
}

// rcloneTree: every size class rclone treats differently with a 5 MiB upload cutoff and part
// size (empty, single PutObject, a multipart upload whose last part is 1 byte, one of 14
// parts), in nested directories, with names using the specials the key charset allows
// (space, !'()*&$=@;:+,?-_.).
var rcloneTree = []rcloneFile{
	{path: "empty file", size: 0},
	{path: "one byte.txt", size: 1},
	{path: "docs/kilo (1)!.bin", size: 1024},
	{path: "docs/a b/c'd*e&f$g=h@i;j:k+l,m?n-o_p.txt", size: 4321},
	{path: "media/five MiB + 1.bin", size: 5*rcloneMiB + 1},
	{path: "media/deep/er/seventy MiB.bin", size: 70 * rcloneMiB},
}

// rcloneWriteTree writes rcloneTree under dir: deterministic pseudo-random bytes (seeded by
// the file's index), distinct modification times with nanoseconds.
func rcloneWriteTree(t *testing.T, dir string) {
	t.Helper()
	base := time.Date(2021, 2, 3, 4, 5, 6, 123456789, time.UTC)
	for i := range rcloneTree {
		f := &rcloneTree[i]
		f.mtime = base.Add(time.Duration(i) * (time.Hour + time.Nanosecond))
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		out, err := os.Create(p)
		require.NoError(t, err)
		var seed [32]byte
		seed[0] = byte(i + 1)
		_, err = io.CopyN(out, rand.NewChaCha8(seed), f.size)
		require.NoError(t, err)
		require.NoError(t, out.Close())
		require.NoError(t, os.Chtimes(p, f.mtime, f.mtime))
	}
}

// rcloneLocal is what a directory holds: per file (slash-separated path) its size, MD5,
// SHA-256 and modification time.
type rcloneLocalFile struct {
	Size   int64
	MD5    string
	SHA256 string
	MTime  time.Time
}

func rcloneReadTree(t *testing.T, dir string) map[string]rcloneLocalFile {
	t.Helper()
	files := map[string]rcloneLocalFile{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		require.True(t, d.Type().IsRegular(), "%s is not a regular file", p)
		rel, err := filepath.Rel(dir, p)
		require.NoError(t, err)
		in, err := os.Open(p)
		require.NoError(t, err)
		defer in.Close()
		m, s := md5.New(), sha256.New()
		n, err := io.Copy(io.MultiWriter(m, s), in)
		require.NoError(t, err)
		info, err := in.Stat()
		require.NoError(t, err)
		files[filepath.ToSlash(rel)] = rcloneLocalFile{Size: n, MD5: hex.EncodeToString(m.Sum(nil)),
			SHA256: hex.EncodeToString(s.Sum(nil)), MTime: info.ModTime().UTC()}
		return nil
	}))
	return files
}

// rcloneETag is the ETag of the file at p (size bytes) as rclone uploads it: its MD5 up to
// the 5 MiB cutoff, else the multipart form (the MD5 of the 5 MiB parts' MD5s, "-", the count).
func rcloneETag(t *testing.T, p string, size int64) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Len(t, b, int(size))
	if size <= 5*rcloneMiB {
		return fmt.Sprintf(`"%x"`, md5.Sum(b))
	}
	var sums []byte
	n := 0
	for ; len(b) > 0; n++ {
		part := b[:min(len(b), 5*rcloneMiB)]
		sum := md5.Sum(part)
		sums = append(sums, sum[:]...)
		b = b[len(part):]
	}
	return fmt.Sprintf(`"%x-%d"`, md5.Sum(sums), n)
}

// rcloneListed is what `rclone lsjson` should list for a tree: sizes, MD5s, times.
func rcloneListed(tree map[string]rcloneLocalFile) map[string]rcloneLocalFile {
	l := map[string]rcloneLocalFile{}
	for p, f := range tree {
		l[p] = rcloneLocalFile{Size: f.Size, MD5: f.MD5, MTime: f.MTime}
	}
	return l
}

// rcloneChangeRE matches what `rclone sync -v` logs for each file it changed.
var rcloneChangeRE = regexp.MustCompile(`(?m)^\S+ \S+ INFO  : (.*: (?:Copied|Deleted|Updated).*)$`)

// rcloneChanges lists what `rclone sync -v` changed, sorted.
func rcloneChanges(log string) []string {
	var changes []string
	for _, m := range rcloneChangeRE.FindAllStringSubmatch(log, -1) {
		changes = append(changes, m[1])
	}
	slices.Sort(changes)
	return changes
}

// rclone runs rclone with the test's configuration file and a clean environment: none of the
// developer's RCLONE_* settings, nor AWS_* ones (the AWS SDK inside rclone reads them even with
// env_auth off: AWS_CA_BUNDLE, for one, breaks its HTTP client), HOME in the test's directory.
type rclone struct {
	t    *testing.T
	bin  string
	conf string
	home string
}

// run runs rclone args and requires it to succeed; it returns stdout.
func (r rclone) run(args ...string) string {
	r.t.Helper()
	stdout, stderr, err := r.exec(args...)
	require.NoError(r.t, err, "rclone %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout, cliTail(stderr))
	return stdout
}

// listing is `rclone lsjson -R` of remote: per file its size, MD5 and modification time.
func (r rclone) listing(remote string) map[string]rcloneLocalFile {
	r.t.Helper()
	var listed []struct {
		Path    string
		Size    int64
		ModTime time.Time
		IsDir   bool
		Hashes  map[string]string
	}
	require.NoError(r.t, json.Unmarshal([]byte(r.run("lsjson", "-R", "--files-only", "--hash", "--hash-type", "md5", remote)), &listed))
	got := map[string]rcloneLocalFile{}
	for _, o := range listed {
		require.False(r.t, o.IsDir)
		got[o.Path] = rcloneLocalFile{Size: o.Size, MD5: o.Hashes["md5"], MTime: o.ModTime.UTC()}
	}
	return got
}

func (r rclone) exec(args ...string) (stdout, stderr string, err error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rcloneTimeout)
	defer cancel()
	// --retries 1 --low-level-retries 1: rclone repeats failed requests and whole syncs by
	// default, which would hide a request the server got wrong.
	cmd := osexec.CommandContext(ctx, r.bin, append([]string{"--config", r.conf, "--retries", "1", "--low-level-retries", "1"}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RCLONE_") && !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "HOME="+r.home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	require.NoError(r.t, ctx.Err(), "rclone %s did not finish within %v\nstderr:\n%s", strings.Join(args, " "), rcloneTimeout, cliTail(errb.String()))
	return out.String(), errb.String(), err
}

// TestCLIRclone: `rclone sync --checksum` of a tree of mixed sizes up to a bucket (the
// bucket created by rclone, the large files as multipart uploads of 5 MiB parts), the bucket's
// listing (sizes, MD5s, modification times) equal to the tree, the ETags of single and
// multipart uploads, a second sync that finds nothing to do, `rclone check`, a sync of a
// changed tree (one file replaced, one deleted), then a sync down into an empty directory
// (the large file in ranged parallel GETs): the same files, byte for byte, with their
// modification times. File backend at <url>/s3, S3 backend (versitygw) at <url>/storage/v1/s3.
func TestCLIRclone(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	rcloneBin := rcloneBinary(t)
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			dir := cliTempDir(t)
			dataDir := filepath.Join(dir, "data")
			env := []string{"STORAGE_DATA_DIR=" + dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT=" + cliFreePort(t),
				"STORAGE_BACKEND=" + backend, "STORAGE_FILE_BACKEND_PATH=", "S3_PROTOCOL_ENABLED=",
				"S3_PROTOCOL_ACCESS_KEY_ID=rclone-key", "S3_PROTOCOL_ACCESS_KEY_SECRET=rclone-secret",
				"S3_PROTOCOL_ENFORCE_REGION=", "S3_PROTOCOL_PREFIX=", "REGION=", "SERVICE_KEY=", "ANON_KEY=",
				"PROJECT_REF=", "TENANT_ID=", "S3_ALLOW_FORWARDED_HEADER=", "S3_PROTOCOL_NON_CANONICAL_HOST_HEADER=",
				"STORAGE_PUBLIC_URL="}
			endpoint := "/s3"
			if backend == "s3" {
				cfg := s3test.Start(t)
				env = append(env, "STORAGE_S3_BUCKET="+cfg.Bucket, "STORAGE_S3_ENDPOINT="+cfg.Endpoint,
					"STORAGE_S3_REGION="+cfg.Region, "STORAGE_S3_FORCE_PATH_STYLE=true",
					"AWS_ACCESS_KEY_ID="+cfg.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+cfg.SecretAccessKey)
				endpoint = "/storage/v1/s3"
			}
			s := cliServe(t, bin, dataDir, cliEnv(env...))
			s.waitReady()

			home := filepath.Join(dir, "home")
			require.NoError(t, os.Mkdir(home, 0o700))
			conf := filepath.Join(home, "rclone.conf")
			require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`[storage]
type = s3
provider = Other
access_key_id = rclone-key
secret_access_key = rclone-secret
region = us-east-1
endpoint = %s%s
force_path_style = true
`, s.url, endpoint)), 0o600))
			rc := rclone{t: t, bin: rcloneBin, conf: conf, home: home}
			// A 5 MiB cutoff and part size (rclone's minimum; its defaults are 200 MiB and 5 MiB).
			sizes := []string{"--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"}

			src := filepath.Join(dir, "src")
			rcloneWriteTree(t, src)
			want := rcloneReadTree(t, src)
			require.Len(t, want, len(rcloneTree))

			rc.run(append([]string{"sync", "--checksum", src, "storage:tree"}, sizes...)...)

			// The listing: every file with its size, MD5 (for the multipart ones rclone reads
			// the MD5 it stored in the metadata) and modification time, nothing else.
			require.Equal(t, rcloneListed(want), rc.listing("storage:tree"))

			// How rclone stored them: single PutObjects up to the cutoff, multipart uploads of
			// 5 MiB parts above it (the ETags say which, and how many parts).
			sdk := cliS3Client(s.url, "us-east-1", "rclone-key", "rclone-secret", "")
			for _, f := range rcloneTree {
				head, err := sdk.HeadObject(context.Background(), &awss3.HeadObjectInput{Bucket: aws.String("tree"), Key: aws.String(f.path)})
				require.NoError(t, err, f.path)
				require.Equal(t, rcloneETag(t, filepath.Join(src, filepath.FromSlash(f.path)), f.size), aws.ToString(head.ETag), f.path)
			}

			// `rclone ls`: size and path per line.
			var lines []string
			for p, f := range want {
				lines = append(lines, fmt.Sprintf("%9d %s", f.Size, p))
			}
			gotLines := strings.Split(strings.TrimSuffix(rc.run("ls", "storage:tree"), "\n"), "\n")
			slices.Sort(lines)
			slices.Sort(gotLines)
			require.Equal(t, lines, gotLines)

			// Nothing to do the second time: every checksum matches.
			_, stderr, err := rc.exec(append([]string{"sync", "--checksum", "--error-on-no-transfer", src, "storage:tree"}, sizes...)...)
			var exit *osexec.ExitError
			require.ErrorAs(t, err, &exit, "a second sync transferred something:\n%s", stderr)
			require.Equal(t, 9, exit.ExitCode(), "rclone's exit code for no transfer:\n%s", stderr)
			_, stderr, err = rc.exec("check", src, "storage:tree")
			require.NoError(t, err, stderr)
			require.Contains(t, stderr, ": 0 differences found\n")
			require.Contains(t, stderr, fmt.Sprintf(": %d matching files\n", len(rcloneTree)))
			require.NotContains(t, stderr, "could not be checked")

			// A changed tree: a file rewritten with other bytes of the same size and time (only
			// its checksum tells), another removed. The sync replaces the one, deletes the other.
			changed := filepath.Join(src, "docs", "kilo (1)!.bin")
			info, err := os.Stat(changed)
			require.NoError(t, err)
			b := make([]byte, info.Size())
			_, _ = rand.NewChaCha8([32]byte{99}).Read(b)
			require.NoError(t, os.WriteFile(changed, b, 0o644))
			require.NoError(t, os.Chtimes(changed, info.ModTime(), info.ModTime()))
			require.NoError(t, os.Remove(filepath.Join(src, "one byte.txt")))
			want = rcloneReadTree(t, src)
			_, stderr, err = rc.exec(append([]string{"sync", "--checksum", "-v", src, "storage:tree"}, sizes...)...)
			require.NoError(t, err, stderr)
			require.Equal(t, []string{"docs/kilo (1)!.bin: Copied (replaced existing)", "one byte.txt: Deleted"}, rcloneChanges(stderr))
			require.Equal(t, rcloneListed(want), rc.listing("storage:tree"))

			// Down into an empty directory: the same bytes and times. The 70 MiB file comes in
			// 4 streams of ranged GETs (rclone's multi-thread download, above 10 MiB here).
			dst := filepath.Join(dir, "dst")
			require.NoError(t, os.Mkdir(dst, 0o755))
			_, stderr, err = rc.exec("sync", "--checksum", "-vv", "--multi-thread-cutoff", "10M", "--multi-thread-streams", "4", "storage:tree", dst)
			require.NoError(t, err, cliTail(stderr))
			require.Contains(t, stderr, "media/deep/er/seventy MiB.bin: Starting multi-thread copy with 4 parts", cliTail(stderr))
			require.Equal(t, want, rcloneReadTree(t, dst))
			require.Equal(t, 0, s.stop(syscall.SIGTERM), "exit code after SIGTERM")
		})
	}
}
