package tests

// The client side of the kill -9 and scale-out tests (crash_test.go, scaleout_test.go): a mixed
// workload over REST, TUS and S3 against one or more `storage serve` processes that the tests
// kill while it runs, with a ledger of everything that was uploaded, so that the tests can
// assert what must hold whatever the moment of the kill: no answer is a 5xx, and every
// download is one complete version ever uploaded to that key (or moved or copied there).
//
// Every version's bytes name themselves (a header with its id and size, then bytes generated
// from the id), so a download is checked without keeping the bytes: a mix of two versions or a
// truncated one cannot parse back to its own header.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/blobtest"
	"github.com/pgstorage/storage/lifecycle"
)

// chaosSeed is the seed of a test's randomness (which operations run, and when the kills land):
// STORAGE_CHAOS_SEED when set, to replay a failure, else the clock. It is logged.
func chaosSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("STORAGE_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "STORAGE_CHAOS_SEED")
		seed = n
	}
	t.Logf("seed %d (replay with STORAGE_CHAOS_SEED=%d)", seed, seed)
	return seed
}

// chaosContent is version id's bytes: a header naming the id and the size, then bytes generated
// from the id.
func chaosContent(id uint64, size int) []byte {
	head := fmt.Sprintf("chaos version %d, %d bytes\n", id, size)
	for len(head) > size { // growing size may add a digit to the header
		size = len(head)
		head = fmt.Sprintf("chaos version %d, %d bytes\n", id, size)
	}
	return append([]byte(head), blobtest.Bytes(int64(size-len(head)), id)...)
}

// chaosVersion returns the id of the version b is, exactly; false when b is no whole version.
func chaosVersion(b []byte) (uint64, bool) {
	line, _, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return 0, false
	}
	var id uint64
	var size int
	if _, err := fmt.Sscanf(string(line), "chaos version %d, %d bytes", &id, &size); err != nil || size != len(b) {
		return 0, false
	}
	return id, bytes.Equal(b, chaosContent(id, size))
}

// chaosClient drives the workload and keeps its ledger. Its methods are safe for concurrent use.
type chaosClient struct {
	service string // the service key
	http    *http.Client
	s3      func(base string) *s3.Client

	ids atomic.Uint64

	mu       sync.Mutex
	uploaded map[string]map[uint64]bool // "bucket/key" → versions ever sent to it
	flows    map[[2]string]bool         // moves and copies sent: "bucket/src" → "bucket/dst"
	seen     map[string]map[uint64]bool // versions downloaded (200) during the workload
	problems []string                   // 5xx answers, torn downloads, refusals that cannot be
	outcomes map[string]int             // op: outcome → count, logged
	pending  []*chaosTUS                // resumable uploads cut by a kill, resumed later
}

// chaosTUS is a resumable upload in progress.
type chaosTUS struct {
	loc  string // its URL path (after the server's base URL)
	id   uint64
	body []byte
}

func newChaosClient(service, keyID, keySecret string) *chaosClient {
	c := &chaosClient{
		service:  service,
		http:     &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		uploaded: map[string]map[uint64]bool{},
		flows:    map[[2]string]bool{},
		seen:     map[string]map[uint64]bool{},
		outcomes: map[string]int{},
	}
	c.s3 = func(base string) *s3.Client {
		return s3.New(s3.Options{BaseEndpoint: aws.String(base + "/s3"), Region: "us-east-1", UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(keyID, keySecret, ""),
			// One attempt: the SDK would retry a request cut by a kill on its own; the
			// ledger counts attempts.
			RetryMaxAttempts: 1})
	}
	return c
}

func (c *chaosClient) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *chaosClient) count(op, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outcomes[op+": "+outcome]++
}

// sent records version id as sent to bucket/key, before any byte of it goes.
func (c *chaosClient) sent(bucket, key string, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bk := bucket + "/" + key
	if c.uploaded[bk] == nil {
		c.uploaded[bk] = map[uint64]bool{}
	}
	c.uploaded[bk][id] = true
}

// possible returns, per "bucket/key", the versions that may be there: those sent to it, and
// those of any key a move or copy was sent from, transitively. Ordering is ignored, so it holds
// more than the truth, never less.
func (c *chaosClient) possible() map[string]map[uint64]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := map[string]map[uint64]bool{}
	for bk, ids := range c.uploaded {
		p[bk] = map[uint64]bool{}
		for id := range ids {
			p[bk][id] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for f := range c.flows {
			for id := range p[f[0]] {
				if !p[f[1]][id] {
					if p[f[1]] == nil {
						p[f[1]] = map[uint64]bool{}
					}
					p[f[1]][id] = true
					changed = true
				}
			}
		}
	}
	return p
}

// chaosAnswer is one HTTP exchange; err is set when it broke (a killed server), and then
// status and body mean nothing.
type chaosAnswer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// do sends one request with the service key and reads the whole answer (err: none came).
// A 503 with Retry-After (the database or the blob store could not take the request now; the
// versitygw under the S3 backend answers its own directory races so) is sent again, as clients
// do, up to four more times: a 503 left after that is the answer.
func (c *chaosClient) do(ctx context.Context, method, u string, body []byte, h ...string) chaosAnswer {
	for try := 1; ; try++ {
		a := c.doOnce(ctx, method, u, body, h...)
		if a.err != nil || a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || try == 5 {
			return a
		}
		c.count("any request", "503 + Retry-After, sent again")
		select {
		case <-ctx.Done():
			return a
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
}

// doOnce is one try of do.
func (c *chaosClient) doOnce(ctx context.Context, method, u string, body []byte, h ...string) chaosAnswer {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return chaosAnswer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.service)
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return chaosAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return chaosAnswer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// judge records the outcome of op, a problem when the server answered a 5xx (in the status
// line or, for the REST error shape, the body's statusCode), and says whether it answered.
func (c *chaosClient) judge(op string, a chaosAnswer) bool {
	if a.err != nil {
		c.count(op, "no answer")
		return false
	}
	var e struct {
		StatusCode string `json:"statusCode"`
	}
	_ = json.Unmarshal(a.body, &e)
	if a.status >= 500 || strings.HasPrefix(e.StatusCode, "5") {
		c.problem("%s: HTTP %d %s", op, a.status, a.body)
	}
	outcome := strconv.Itoa(a.status)
	if e.StatusCode != "" {
		outcome += " " + e.StatusCode
	}
	c.count(op, outcome)
	return true
}

// requireStatus records a problem when op answered anything but want.
func (c *chaosClient) requireStatus(op string, a chaosAnswer, want int) {
	if c.judge(op, a) && a.status != want {
		c.problem("%s: want HTTP %d, got %d %s", op, want, a.status, a.body)
	}
}

// chaosSize picks an object size: mostly small, sometimes several MiB.
func chaosSize(rng *rand.Rand) int {
	if rng.IntN(5) == 0 {
		return 1<<20 + rng.IntN(5<<20)
	}
	return 1 + rng.IntN(16<<10)
}

// upsert replaces bucket/key over REST (PUT, or POST with x-upsert), which always succeeds.
func (c *chaosClient) upsert(ctx context.Context, base, bucket, key string, size int, rng *rand.Rand) {
	id := c.ids.Add(1)
	c.sent(bucket, key, id)
	method, h := http.MethodPut, []string{"Content-Type", "application/octet-stream"}
	if rng.IntN(2) == 0 {
		method, h = http.MethodPost, append(h, "x-upsert", "true")
	}
	a := c.do(ctx, method, base+"/object/"+bucket+"/"+key, chaosContent(id, size), h...)
	c.requireStatus("upsert", a, http.StatusOK)
}

// create uploads bucket/key over REST without upsert: refused (409 in the body) when it exists.
func (c *chaosClient) create(ctx context.Context, base, bucket, key string, size int) {
	id := c.ids.Add(1)
	c.sent(bucket, key, id)
	c.judge("create", c.do(ctx, http.MethodPost, base+"/object/"+bucket+"/"+key, chaosContent(id, size),
		"Content-Type", "application/octet-stream"))
}

// tus uploads bucket/key with TUS (x-upsert) in PATCHes of at most 2 MiB; abandon stops after
// the first PATCH and leaves the upload unfinished, for the collector. An upload cut by a kill
// is kept to be resumed after the restart. Like tus-js-client, every request of an upload
// carries x-upsert (the server reads it from each).
func (c *chaosClient) tus(ctx context.Context, base, bucket, key string, size int, abandon bool) {
	id := c.ids.Add(1)
	c.sent(bucket, key, id)
	body := chaosContent(id, size)
	meta := "bucketName " + base64.StdEncoding.EncodeToString([]byte(bucket)) +
		",objectName " + base64.StdEncoding.EncodeToString([]byte(key)) +
		",contentType " + base64.StdEncoding.EncodeToString([]byte("application/octet-stream"))
	a := c.do(ctx, http.MethodPost, base+"/upload/resumable", nil, "Tus-Resumable", "1.0.0",
		"Upload-Length", strconv.Itoa(len(body)), "Upload-Metadata", meta, "x-upsert", "true")
	c.requireStatus("tus create", a, http.StatusCreated)
	if a.err != nil || a.status != http.StatusCreated {
		return
	}
	loc, err := url.Parse(a.header.Get("Location"))
	if err != nil || loc.Path == "" {
		c.problem("tus create: Location %q", a.header.Get("Location"))
		return
	}
	u := &chaosTUS{loc: loc.Path, id: id, body: body}
	c.tusPatch(ctx, base, u, 0, abandon, false)
}

// tusPatch sends u's bytes from offset on. An upload resumed after a restart may have expired
// meanwhile (TUS_URL_EXPIRY_MS after its last PATCH): then 410.
func (c *chaosClient) tusPatch(ctx context.Context, base string, u *chaosTUS, offset int, abandon, resumed bool) {
	for offset < len(u.body) {
		end := min(offset+2<<20, len(u.body))
		a := c.do(ctx, http.MethodPatch, base+u.loc, u.body[offset:end], "Tus-Resumable", "1.0.0",
			"Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.Itoa(offset), "x-upsert", "true")
		if a.err != nil {
			c.count("tus patch", "no answer")
			c.mu.Lock()
			c.pending = append(c.pending, u)
			c.mu.Unlock()
			return
		}
		if resumed && a.status == http.StatusGone {
			c.count("tus patch", "410 expired")
			return
		}
		c.requireStatus("tus patch", a, http.StatusNoContent)
		if a.status != http.StatusNoContent {
			return
		}
		offset = end
		if abandon {
			return
		}
	}
}

// resume goes on with a resumable upload a kill cut: HEAD says where, PATCH sends the rest.
// One the restarted server no longer has (it completed, or expired) answers 404.
func (c *chaosClient) resume(ctx context.Context, base string, u *chaosTUS) {
	a := c.do(ctx, http.MethodHead, base+u.loc, nil, "Tus-Resumable", "1.0.0", "x-upsert", "true")
	if !c.judge("tus head", a) || a.status != http.StatusOK {
		return
	}
	off, err := strconv.Atoi(a.header.Get("Upload-Offset"))
	if err != nil || off < 0 || off > len(u.body) {
		c.problem("tus head: Upload-Offset %q of %d bytes", a.header.Get("Upload-Offset"), len(u.body))
		return
	}
	c.tusPatch(ctx, base, u, off, false, true)
}

// resumePending resumes the uploads cut by the last kill.
func (c *chaosClient) resumePending(ctx context.Context, base string) {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, u := range pending {
		c.resume(ctx, base, u)
	}
}

// s3Put uploads bucket/key with S3 PutObject.
func (c *chaosClient) s3Put(ctx context.Context, base, bucket, key string, size int) {
	id := c.ids.Add(1)
	c.sent(bucket, key, id)
	_, err := c.s3(base).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(chaosContent(id, size)), ContentType: aws.String("application/octet-stream")})
	c.s3Judge("s3 put", err)
}

// s3Multipart uploads bucket/key with an S3 multipart upload of a 5 MiB part and a small one.
func (c *chaosClient) s3Multipart(ctx context.Context, base, bucket, key string) {
	id := c.ids.Add(1)
	c.sent(bucket, key, id)
	body := chaosContent(id, 5<<20+1000)
	cl := c.s3(base)
	mp, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if !c.s3Judge("s3 multipart create", err) {
		return
	}
	var parts []s3types.CompletedPart
	for i, p := range [][]byte{body[:5<<20], body[5<<20:]} {
		up, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key),
			UploadId: mp.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
		if !c.s3Judge("s3 multipart part", err) {
			return
		}
		parts = append(parts, s3types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	_, err = cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		UploadId: mp.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	c.s3Judge("s3 multipart complete", err)
}

// s3Judge is judge for the S3 SDK: a problem when the server answered a 5xx, and whether the
// call succeeded. These uploads are never refused.
func (c *chaosClient) s3Judge(op string, err error) bool {
	if err == nil {
		c.count(op, "ok")
		return true
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() == 0 { // 0: the request or its answer broke
		c.count(op, "no answer")
		return false
	}
	c.count(op, strconv.Itoa(re.HTTPStatusCode()))
	c.problem("%s: %v", op, err)
	return false
}

// moveOrCopy sends POST /object/move or /object/copy of src to dst in bucket.
func (c *chaosClient) moveOrCopy(ctx context.Context, base, op, bucket, src, dst string) {
	c.mu.Lock()
	c.flows[[2]string{bucket + "/" + src, bucket + "/" + dst}] = true
	c.mu.Unlock()
	body, _ := json.Marshal(map[string]string{"bucketId": bucket, "sourceKey": src, "destinationKey": dst})
	c.judge(op, c.do(ctx, http.MethodPost, base+"/object/"+op, body, "Content-Type", "application/json"))
}

func (c *chaosClient) remove(ctx context.Context, base, bucket, key string) {
	c.judge("delete", c.do(ctx, http.MethodDelete, base+"/object/"+bucket+"/"+key, nil))
}

func (c *chaosClient) list(ctx context.Context, base, bucket string) {
	c.judge("list", c.do(ctx, http.MethodPost, base+"/object/list/"+bucket, []byte(`{"prefix":""}`), "Content-Type", "application/json"))
}

func (c *chaosClient) empty(ctx context.Context, base, bucket string) {
	c.judge("empty", c.do(ctx, http.MethodPost, base+"/bucket/"+bucket+"/empty", nil))
}

// download GETs bucket/key; a 200 must be one whole version.
func (c *chaosClient) download(ctx context.Context, base, bucket, key string) {
	c.checkDownload("download", bucket, key, c.do(ctx, http.MethodGet, base+"/object/authenticated/"+bucket+"/"+key, nil))
}

// signed mints a signed URL for bucket/key on one server and downloads it from another.
func (c *chaosClient) signed(ctx context.Context, mint, fetch, bucket, key string) {
	a := c.do(ctx, http.MethodPost, mint+"/object/sign/"+bucket+"/"+key, []byte(`{"expiresIn":600}`), "Content-Type", "application/json")
	if !c.judge("sign", a) || a.status != http.StatusOK {
		return
	}
	var s struct {
		SignedURL string `json:"signedURL"`
	}
	if err := json.Unmarshal(a.body, &s); err != nil || !strings.HasPrefix(s.SignedURL, "/object/sign/") {
		c.problem("sign: %s", a.body)
		return
	}
	c.checkDownload("signed download", bucket, key, c.do(ctx, http.MethodGet, fetch+s.SignedURL, nil))
}

func (c *chaosClient) checkDownload(op, bucket, key string, a chaosAnswer) {
	if !c.judge(op, a) || a.status != http.StatusOK {
		return
	}
	id, ok := chaosVersion(a.body)
	if !ok {
		c.problem("%s %s/%s: %d bytes that are no whole version (%.60q…)", op, bucket, key, len(a.body), a.body)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	bk := bucket + "/" + key
	if c.seen[bk] == nil {
		c.seen[bk] = map[uint64]bool{}
	}
	c.seen[bk][id] = true
}

// requireClean fails t with every problem the workload met, and checks that each version
// downloaded during it could have been at its key. It logs the outcomes.
func (c *chaosClient) requireClean(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	var outcomes []string
	for k, n := range c.outcomes {
		outcomes = append(outcomes, fmt.Sprintf("%s ×%d", k, n))
	}
	problems := append([]string(nil), c.problems...)
	c.mu.Unlock()
	sort.Strings(outcomes)
	t.Logf("outcomes: %s", strings.Join(outcomes, ", "))
	require.Empty(t, problems, "the workload met problems")
	possible := c.possible()
	c.mu.Lock()
	defer c.mu.Unlock()
	for bk, ids := range c.seen {
		for id := range ids {
			require.True(t, possible[bk][id], "%s served version %d, which was never sent to it (nor moved or copied there)", bk, id)
		}
	}
}

// requireDownloads downloads every object the database has, from base: each must be one whole
// version that could be at its key.
func (c *chaosClient) requireDownloads(t *testing.T, ctx context.Context, pool *pgxpool.Pool, base string) int {
	t.Helper()
	rows, _ := pool.Query(ctx, `select bucket_id, name from storage.objects order by bucket_id, name`)
	type object struct{ Bucket, Name string }
	objects, err := pgx.CollectRows(rows, pgx.RowToStructByPos[object])
	require.NoError(t, err)
	possible := c.possible()
	for _, o := range objects {
		a := c.do(ctx, http.MethodGet, base+"/object/authenticated/"+o.Bucket+"/"+o.Name, nil)
		require.NoError(t, a.err, "GET %s/%s", o.Bucket, o.Name)
		require.Equal(t, http.StatusOK, a.status, "GET %s/%s: %s", o.Bucket, o.Name, a.body)
		id, ok := chaosVersion(a.body)
		require.True(t, ok, "GET %s/%s: %d bytes that are no whole version (%.60q…)", o.Bucket, o.Name, len(a.body), a.body)
		require.True(t, possible[o.Bucket+"/"+o.Name][id], "%s/%s holds version %d, which was never sent to it (nor moved or copied there)", o.Bucket, o.Name, id)
	}
	return len(objects)
}

// chaosAwaitClean waits until the store holds nothing but the blobs rows reference: Reconcile
// (grace 0, report only) finds no missing blob, no orphan, no leftover, no upload in flight
// of any kind, the queue of freed blobs is empty and every bucket-empty job finished: what the
// collector reaches by itself.
func chaosAwaitClean(t *testing.T, ctx context.Context, pool *pgxpool.Pool, store blob.Store, timeout time.Duration) lifecycle.Report {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var out strings.Builder
		r, err := lifecycle.Reconcile(ctx, pool, store, lifecycle.ReconcileOptions{Grace: 0, Out: &out})
		require.NoError(t, err)
		var queued, inFlight, emptyJobs int
		require.NoError(t, pool.QueryRow(ctx, `select (select count(*) from storage.blobs_freed), (select count(*) from storage.blob_uploads),
			(select count(*) from storage.bucket_empty_jobs where finished_at is null)`).Scan(&queued, &inFlight, &emptyJobs))
		if r.MissingBlobs == 0 && r.Orphans == 0 && r.StaleUploads == 0 && r.Leftovers == 0 && r.Resumable == 0 &&
			r.Multipart == 0 && r.Errors == 0 && queued == 0 && inFlight == 0 && emptyJobs == 0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the store still holds more than the referenced blobs: %+v, %d queued, %d uploads in flight, %d bucket-empty jobs unfinished\n%s",
				timeout, r, queued, inFlight, emptyJobs, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// chaosKeys are the keys the workload writes, in every bucket it uses: few, so that operations
// collide.
var chaosKeys = []string{"k0", "k1", "k2", "dir/k3", "dir/k4", "dir/sub/k5"}

// chaosMix says which operations the workload runs.
type chaosMix struct {
	buckets   []string // the first is written most; emptied is emptied now and then
	emptied   string
	multipart bool // S3 multipart uploads too
	// base picks the server of a request; sign and fetch of a signed URL pick one each.
	base func(rng *rand.Rand) string
}

// work runs random operations until ctx is done; tick is called as each one starts.
func (c *chaosClient) work(ctx context.Context, rng *rand.Rand, m chaosMix, tick func()) {
	for ctx.Err() == nil {
		tick()
		base := m.base(rng)
		bucket := m.buckets[0]
		if rng.IntN(4) == 0 {
			bucket = m.buckets[rng.IntN(len(m.buckets))]
		}
		key := chaosKeys[rng.IntN(len(chaosKeys))]
		other := chaosKeys[rng.IntN(len(chaosKeys))]
		switch r := rng.IntN(100); {
		case r < 24:
			c.upsert(ctx, base, bucket, key, chaosSize(rng), rng)
		case r < 30:
			c.create(ctx, base, bucket, key, chaosSize(rng))
		case r < 38:
			c.tus(ctx, base, bucket, key, 1+rng.IntN(5<<20), rng.IntN(4) == 0)
		case r < 44:
			c.s3Put(ctx, base, bucket, key, chaosSize(rng))
		case r < 46 && m.multipart:
			c.s3Multipart(ctx, base, bucket, key)
		case r < 53:
			c.moveOrCopy(ctx, base, "move", bucket, key, other)
		case r < 60:
			c.moveOrCopy(ctx, base, "copy", bucket, key, other)
		case r < 68:
			c.remove(ctx, base, bucket, key)
		case r < 84:
			c.download(ctx, base, bucket, key)
		case r < 90:
			c.signed(ctx, base, m.base(rng), bucket, key)
		case r < 96:
			c.list(ctx, base, bucket)
		case m.emptied != "" && r < 98:
			c.empty(ctx, base, m.emptied)
		default:
			c.resumePending(ctx, base)
		}
	}
}
