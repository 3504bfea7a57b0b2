package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The resumable (TUS) upload of the large object: the protocol Supabase's clients switch to
// for large files, in the chunks they send. It stores the same bytes as the REST upload, to a
// key of its own, and is measured the same way, so the two compare in one run.

const (
	// resumableChunk is the PATCH size Supabase's clients use (TUS.md §0: 6 MiB chunks).
	resumableChunk = 6 << 20
	// resumableKey is where the resumable upload's object lives in the private bucket.
	resumableKey = "big/1g-resumable"
	// tusVersion is the only protocol version the server speaks.
	tusVersion = "1.0.0"
)

// resumableName is the resumable upload's name in the report and for BENCH_ONLY.
func resumableName(size int64) string {
	return fmt.Sprintf("resumable upload %s, %s chunks", sizeName(size), sizeName(resumableChunk))
}

// resumablePatches is how many PATCHes carry size bytes in chunks of chunk bytes.
func resumablePatches(size, chunk int64) int {
	return int((size + chunk - 1) / chunk)
}

// uploadMetadata renders TUS's Upload-Metadata: "key base64(value)" pairs, comma-separated.
func uploadMetadata(pairs ...string) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		parts = append(parts, pairs[i]+" "+base64.StdEncoding.EncodeToString([]byte(pairs[i+1])))
	}
	return strings.Join(parts, ",")
}

// uploadResumable creates a resumable upload of size bytes to b/big/1g-resumable and sends
// them in sequential PATCHes of chunk bytes, each read from the generator as it is sent (the
// client holds no chunk in memory), over one keep-alive connection as a client's loop does.
// The time covers the create and every PATCH; each answer must carry the expected offset and
// the last one Tus-Complete.
func uploadResumable(ctx context.Context, s *server, size, chunk int64) transferResult {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	// A client of its own, as bigClient's, counting the connections it opens: one is the
	// client's loop; more means the server closed a connection between PATCHes.
	var dials atomic.Int32
	dialer := &net.Dialer{Timeout: requestTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DisableCompression: true,
		MaxConnsPerHost:    1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	w := watchRSS(s.proc.pid())
	start := time.Now()
	patches, err := sendResumable(ctx, client, s, size, chunk)
	res := transferResult{elapsed: time.Since(start), rss: w.done(), bytes: size, requests: patches, conns: int(dials.Load())}
	if err == nil {
		err = checkStored(ctx, client, s, resumableKey, size)
	}
	res.err = err
	return res
}

// sendResumable is the client's side of the upload: the create, then the PATCHes. It returns
// how many PATCHes were answered.
func sendResumable(ctx context.Context, client *http.Client, s *server, size, chunk int64) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/upload/resumable", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.service)
	req.Header.Set("Tus-Resumable", tusVersion)
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", uploadMetadata("bucketName", privateBucket, "objectName", resumableKey,
		"contentType", "application/octet-stream"))
	resp, body, err := roundTrip(client, req)
	if err != nil {
		return 0, fmt.Errorf("create: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("create answered %d: %s", resp.StatusCode, short(body))
	}
	location := resp.Header.Get("Location")
	if location == "" {
		return 0, fmt.Errorf("create answered 201 without a Location")
	}
	complete := resp.Header.Get("Tus-Complete") == "1" // a zero-length upload completes at creation

	src := &patternReader{remaining: size}
	patches := 0
	for offset := int64(0); offset < size; {
		n := min(chunk, size-offset)
		req, err := http.NewRequestWithContext(ctx, "PATCH", location, io.LimitReader(src, n))
		if err != nil {
			return patches, err
		}
		req.ContentLength = n
		req.Header.Set("Authorization", "Bearer "+s.service)
		req.Header.Set("Tus-Resumable", tusVersion)
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
		resp, body, err := roundTrip(client, req)
		if err != nil {
			return patches, fmt.Errorf("PATCH at offset %d: %w", offset, err)
		}
		patches++
		if resp.StatusCode != http.StatusNoContent {
			return patches, fmt.Errorf("PATCH at offset %d answered %d: %s", offset, resp.StatusCode, short(body))
		}
		offset += n
		if got := resp.Header.Get("Upload-Offset"); got != strconv.FormatInt(offset, 10) {
			return patches, fmt.Errorf("PATCH answered Upload-Offset %q, want %d", got, offset)
		}
		complete = resp.Header.Get("Tus-Complete") == "1"
		if complete != (offset == size) {
			return patches, fmt.Errorf("PATCH to offset %d of %d answered Tus-Complete %q", offset, size, resp.Header.Get("Tus-Complete"))
		}
	}
	if !complete {
		return patches, fmt.Errorf("the upload did not complete")
	}
	return patches, nil
}

// roundTrip sends req and reads the answer's body whole (at most 64 KiB), so the connection
// goes back to the client's pool for the next request.
func roundTrip(client *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, body, err
}

// checkStored asks the object's size back (outside the timing): the upload stored an object
// of size bytes under key.
func checkStored(ctx context.Context, client *http.Client, s *server, key string, size int64) error {
	req, err := http.NewRequestWithContext(ctx, "HEAD", s.base+"/object/authenticated/"+privateBucket+"/"+key, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.service)
	resp, _, err := roundTrip(client, req)
	if err != nil {
		return fmt.Errorf("HEAD of the uploaded object: %w", err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != size {
		return fmt.Errorf("HEAD of the uploaded object answered %d with %d bytes, want 200 with %d", resp.StatusCode, resp.ContentLength, size)
	}
	return nil
}
