package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// workload is one small-request benchmark: a request that wrk repeats over every connection.
type workload struct {
	name    string
	ref     float64 // the reference server's req/s on this machine (midpoint of a range)
	refText string  // the reference as the issue states it

	method, path string
	token        func(*server) string // nil: no Authorization header
	body         []byte
	header       map[string]string

	// upload: each request goes to a fresh key (scripts/upload.lua) instead of repeating path.
	upload bool
	// s3: path is presigned for the S3 door (session-token mode, the service key as the
	// token) when the workload runs; one URL serves every request.
	s3 bool

	// planned marks a workload whose route did not exist when it was written. Its probe
	// failing means "not implemented yet"; once the route answers as check expects, the
	// workload runs with no change here.
	planned bool
	// check validates the probe's answer; nil: status 200 is enough.
	check func(status int, body []byte) error
	// fixture creates what the workload reads beyond the common fixtures; run after a
	// successful probe and before measuring.
	fixture func(context.Context, *server) error
}

func serviceKey(s *server) string { return s.service }

// listFolder, listFolderSize and listPage: list v1 reads a page of 100 from a 2,000-object folder.
const (
	listFolder     = "folder"
	listFolderSize = 2000
	listPage       = 100
	listPath       = "/object/list/" + privateBucket
)

var listBody = []byte(fmt.Sprintf(`{"prefix":%q,"limit":%d,"offset":0,"sortBy":{"column":"name","order":"asc"}}`, listFolder, listPage))

// uploadWorkload is the small upload, whose two halves are measured alone as ceilings.
const uploadWorkload = "upload 1 KiB, fresh keys"

// workloads is every small-request benchmark, in report order. The service key is the caller
// where one is needed: it is what the reference's numbers were taken with, and it keeps RLS
// policies (which the benchmark would have to invent) out of the measurement.
var workloads = []workload{
	{
		name: "authenticated GET 1 KiB", ref: 700, refText: "700",
		method: "GET", path: "/object/authenticated/" + privateBucket + "/" + objectKey, token: serviceKey,
		check: wantBytes(smallSize),
	},
	{
		name: "public GET 1 KiB", ref: 750, refText: "750",
		method: "GET", path: "/object/public/" + publicBucket + "/" + objectKey,
		check: wantBytes(smallSize),
	},
	{
		name: "object info", ref: 1150, refText: "800–1,500",
		method: "GET", path: "/object/info/" + privateBucket + "/" + objectKey, token: serviceKey,
	},
	{
		name: "bucket get", ref: 2700, refText: "2,400–3,000",
		method: "GET", path: "/bucket/" + privateBucket, token: serviceKey,
	},
	{
		// POST /object/sign/{b}/{k} (API.md O14). Until the route exists the upload route
		// takes the path (bucket "sign"), which answers an error: "not implemented yet".
		name: "sign URL", ref: 1200, refText: "1,200", planned: true,
		method: "POST", path: "/object/sign/" + privateBucket + "/" + objectKey, token: serviceKey,
		body: []byte(`{"expiresIn":3600}`), header: jsonHeader,
		check: wantSignedURL,
	},
	{
		// POST /object/list/{b} (API.md O21, §7.1) with storage-js's default body shape.
		name: "list v1 (page of 100 from a 2,000-object folder)", ref: 570, refText: "570",
		method: "POST", path: listPath, token: serviceKey, body: listBody, header: jsonHeader,
		check: wantJSONArray(-1), fixture: listFixture,
	},
	{
		name: uploadWorkload, ref: 470, refText: "470",
		method: "POST", path: "/object/" + privateBucket + "/up/probe", token: serviceKey,
		body: smallObject, header: binaryHeader, upload: true,
	},
	{
		// The S3 door's twin of "authenticated GET 1 KiB": SigV4 verification instead of a
		// JWT, the same SQL call and blob read. No reference figure: it was not measured.
		name: "S3 GetObject 1 KiB (presigned)", refText: "not measured",
		method: "GET", path: "/s3/" + privateBucket + "/" + objectKey, s3: true,
		check: wantBytes(smallSize),
	},
	{
		// PutObject always overwrites: every request replaces the same key (and frees the
		// blob it replaced), through the REST upload's prepare, stream and commit.
		name: "S3 PutObject 1 KiB (presigned, same key)", refText: "not measured",
		method: "PUT", path: "/s3/" + privateBucket + "/s3put", s3: true,
		body: smallObject, header: binaryHeader,
	},
}

// presignS3 returns path presigned for the S3 door, valid for an hour: session-token mode
// (access key storage-single-tenant, the anon key as secret, the service key as token).
func presignS3(ctx context.Context, s *server, method, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, nil)
	if err != nil {
		return "", err
	}
	req.URL.RawQuery = "X-Amz-Expires=3600"
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	creds := aws.Credentials{AccessKeyID: "storage-single-tenant", SecretAccessKey: s.anon, SessionToken: s.service}
	u, _, err := signer.PresignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now())
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(u, s.base), nil
}

// wantBytes checks a download's status and length.
func wantBytes(n int) func(int, []byte) error {
	return func(status int, body []byte) error {
		if status != http.StatusOK || len(body) != n {
			return fmt.Errorf("answered %d with %d bytes, want 200 with %d: %s", status, len(body), n, short(body))
		}
		return nil
	}
}

// wantSignedURL checks a sign answer: 200 {"signedURL": "/object/sign/…?token=…"}.
func wantSignedURL(status int, body []byte) error {
	var v struct {
		SignedURL string `json:"signedURL"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &v) != nil || v.SignedURL == "" {
		return fmt.Errorf("answered %d: %s", status, short(body))
	}
	return nil
}

// wantJSONArray checks a list answer: 200 and a JSON array of n entries (n < 0: any length).
func wantJSONArray(n int) func(int, []byte) error {
	return func(status int, body []byte) error {
		var v []json.RawMessage
		if status != http.StatusOK || json.Unmarshal(body, &v) != nil || (n >= 0 && len(v) != n) {
			return fmt.Errorf("answered %d: %s", status, short(body))
		}
		return nil
	}
}

// listFixture fills b/folder/ with 2,000 1 KiB objects, 16 uploads at a time, then checks that
// a list returns a full page.
func listFixture(ctx context.Context, s *server) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > listFolderSize {
					return
				}
				path := "/object/" + privateBucket + "/" + listFolder + "/obj-" + strconv.FormatInt(i, 10)
				if err := s.mustOK(ctx, "list fixture", "POST", path, s.service, binaryHeader, smallObject); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	status, body, err := s.do(ctx, "POST", listPath, s.service, jsonHeader, listBody)
	if err != nil {
		return err
	}
	return wantJSONArray(listPage)(status, body)
}

// outcome is one workload's row: measured, or why not.
type outcome struct {
	w       workload
	res     wrkResult
	skipped string  // non-empty: not measured, and why
	others  float64 // share of the machine's CPU used by other programs meanwhile (-1: unknown)
	cpu     cpuUse  // CPU used by the server, its PostgreSQL and the load generator during the run
	prof    profResult
}

// runWorkload probes w with one request, creates its fixture, warms up and measures it, and
// profiles the server during the measured run unless prof is nil.
func runWorkload(ctx context.Context, s *server, st wrkSettings, warmup time.Duration, scripts map[string]string, w workload, prof *profiler) outcome {
	o := outcome{w: w}
	token := ""
	if w.token != nil {
		token = w.token(s)
	}
	if w.s3 {
		p, err := presignS3(ctx, s, w.method, w.path)
		if err != nil {
			o.skipped = "presign failed: " + err.Error()
			return o
		}
		w.path = p
	}
	status, body, err := s.do(ctx, w.method, w.path, token, w.header, w.body)
	if err == nil {
		check := w.check
		if check == nil {
			check = func(status int, body []byte) error {
				if status != http.StatusOK {
					return fmt.Errorf("answered %d: %s", status, short(body))
				}
				return nil
			}
		}
		err = check(status, body)
	}
	if err != nil {
		if w.planned {
			o.skipped = "not implemented yet"
		} else {
			o.skipped = "probe failed"
		}
		o.skipped += fmt.Sprintf(" (%s %s %v)", w.method, w.path, err)
		return o
	}
	if w.fixture != nil {
		if err := w.fixture(ctx, s); err != nil {
			o.skipped = "fixture failed: " + err.Error()
			return o
		}
	}
	run := func(d time.Duration, phase string) (wrkResult, error) {
		r := wrkRun{url: s.base + w.path}
		if token != "" {
			r.headers = append(r.headers, "Authorization: Bearer "+token)
		}
		switch {
		case w.upload:
			r.url = s.base
			r.script = scripts["upload.lua"]
			r.scriptArgs = []string{privateBucket, "up/" + phase}
		case w.method != "GET" || len(w.body) > 0:
			r.script = scripts["request.lua"]
			r.scriptArgs = []string{w.method, string(w.body)}
			for k, v := range w.header {
				r.scriptArgs = append(r.scriptArgs, k+": "+v)
			}
		}
		return runWrk(ctx, st, d, r)
	}
	if warmup > 0 {
		if _, err := run(warmup, "warmup"); err != nil {
			o.skipped = "warm-up failed: " + err.Error()
			return o
		}
	}
	var pr *profRun
	if prof != nil {
		pr = prof.begin(ctx, slug(w.name), st.duration)
	}
	before := takeCPUSnap(s.proc.pid())
	o.res, err = run(st.duration, "run")
	after := takeCPUSnap(s.proc.pid())
	o.others, o.cpu = othersShare(before, after), cpuSplit(before, after)
	if err != nil {
		o.skipped = "wrk failed: " + err.Error()
	}
	if pr != nil {
		o.prof = pr.end(ctx, o.res.requests)
	} else {
		o.prof = profResult{allocErr: errProfilingOff, cpuErr: errProfilingOff}
	}
	return o
}
