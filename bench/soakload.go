package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// The soak's clients. Well-behaved clients loop over a weighted mix of operations, each on its
// own keep-alive connection as an application's client would; the objects they create live in
// a folder of their own (c<id>/), at most ownedMax at a time, so the data set stays bounded
// however long the run: an upload when the folder is full becomes a delete. Misbehaving
// clients loop over one episode each: a slow transfer that keeps moving, one that stalls past
// the server's inactivity timeout, or a transfer cut off halfway.

const (
	soakBucket    = "soak"    // private: the service key reads and writes it
	soakPubBucket = "soakpub" // public: read without a key
	smallKey      = "fix/small"
	mediumKey     = "fix/medium"
	largeKey      = "fix/large"
	mediumSize    = 1 << 20
	// largeSize is what slow and cut-off downloads read: larger than every buffer on the way
	// (the server's socket send buffer grows to 4 MiB here), so a client that stops reading
	// does stall the server's writes.
	largeSize   = 16 << 20
	sharedKeys  = 8   // shared/0 … shared/7, upserted by every client
	listObjects = 150 // listdir/ holds this many; a list reads a page of 100
	ownedMax    = 16
	// thinkMax bounds the pause between one client's operations (uniform in [0, thinkMax)).
	thinkMax = 50 * time.Millisecond
	// requestLimit is a well-behaved client's whole-request timeout: past it the request
	// counts as a client error (a timeout).
	requestLimit = 60 * time.Second
)

// soakPayload is what uploads send: a prefix of it, up to 1 MiB.
var soakPayload = bytes.Repeat(pattern, mediumSize/len(pattern))

// soakRun is what every client of one backend's run shares.
type soakRun struct {
	s        *server
	rec      *recorder
	timeout  time.Duration // the server's inactivity timeouts (header, read, write)
	stopping atomic.Bool   // set when the duration is over: clients finish their operation and leave
}

// client is one well-behaved client.
type client struct {
	id    int
	r     *soakRun
	http  *http.Client
	rng   *rand.Rand
	owned []string
	seq   int
}

func newClient(r *soakRun, id int) *client {
	return &client{id: id, r: r, rng: rand.New(rand.NewPCG(uint64(id), 0x50a4)),
		http: &http.Client{Timeout: requestLimit, Transport: &http.Transport{
			DisableCompression: true, MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second,
		}}}
}

// soakOp is one kind of operation and its share of the mix.
type soakOp struct {
	weight int
	run    func(c *client, ctx context.Context)
}

// soakMix is the well-behaved clients' mix; the weights are shares of operations, not of
// requests (sign then download, or a TUS create then PATCH, are one operation of two requests).
var soakMix = []soakOp{
	{10, (*client).publicGet},
	{5, (*client).publicRange},
	{10, (*client).authGet},
	{5, (*client).authRange},
	{3, (*client).info},
	{8, func(c *client, ctx context.Context) { c.upload(ctx, "upload small", 1<<10+c.rng.IntN(15<<10)) }},
	{2, func(c *client, ctx context.Context) { c.upload(ctx, "upload medium", 256<<10+c.rng.IntN(768<<10)) }},
	{4, (*client).upsertShared},
	{5, (*client).list},
	{4, (*client).signDownload},
	{3, (*client).move},
	{3, (*client).copy},
	{6, (*client).remove},
	{2, (*client).tus},
	{4, (*client).s3Get},
	{3, (*client).s3Put},
	{1, (*client).missing},
	{1, (*client).duplicate},
}

var soakMixTotal = func() int {
	n := 0
	for _, o := range soakMix {
		n += o.weight
	}
	return n
}()

// loop runs operations until the run is stopping or ctx ends.
func (c *client) loop(ctx context.Context) {
	defer c.http.CloseIdleConnections()
	for !c.r.stopping.Load() && ctx.Err() == nil {
		n := c.rng.IntN(soakMixTotal)
		for _, o := range soakMix {
			if n < o.weight {
				o.run(c, ctx)
				break
			}
			n -= o.weight
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(c.rng.Int64N(int64(thinkMax)))):
		}
	}
}

// answer is what a request got: its status, the first bodyKeep bytes of its body and the
// body's length.
type answer struct {
	status int
	header http.Header
	head   []byte
	n      int64
}

const bodyKeep = 64 << 10

// req describes one request.
type req struct {
	op, method, path string // path: from the server's base, or an absolute URL
	key              bool   // send the service key
	header           map[string]string
	body             []byte
	expect           []int              // 4xx statuses meant
	check            func(answer) error // validates a 2xx answer; nil: any
}

// do sends one request, records it and returns its answer (ok: a 2xx that passed check).
func (c *client) do(ctx context.Context, q req) (answer, bool) {
	url := q.path
	if !strings.HasPrefix(url, "http") {
		url = c.r.s.base + url
	}
	start := time.Now()
	a, err := c.send(ctx, q.method, url, q.key, q.header, q.body)
	d := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return a, false // the run was cut short: not the server's doing
		}
		c.r.rec.request(q.op, start, d, classClientError, q.method+" "+q.op+": "+err.Error())
		return a, false
	}
	cl, st := classify(a.status, a.header.Get("Retry-After") != "", a.head, q.expect...)
	shown := strings.TrimPrefix(url, c.r.s.base)
	if i := strings.IndexByte(shown, '?'); i >= 0 {
		shown = shown[:i] + "?…" // a signature or token: long, and says nothing
	}
	detail := fmt.Sprintf("%s %s → %d (logical %d): %s", q.method, shown, a.status, st, short(a.head))
	if cl == classOK && q.check != nil {
		if err := q.check(a); err != nil {
			cl, detail = classWrong, fmt.Sprintf("%s %s → %d: %v", q.method, shown, a.status, err)
		}
	}
	c.r.rec.request(q.op, start, d, cl, detail)
	return a, cl == classOK
}

func (c *client) send(ctx context.Context, method, url string, key bool, header map[string]string, body []byte) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return answer{}, err
	}
	if key {
		r.Header.Set("Authorization", "Bearer "+c.r.s.service)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	resp, err := c.http.Do(r)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	var head bytes.Buffer
	n, err := io.Copy(&head, io.LimitReader(resp.Body, bodyKeep))
	if err == nil {
		var rest int64
		rest, err = io.Copy(io.Discard, resp.Body)
		n += rest
	}
	a.head, a.n = head.Bytes(), n
	return a, err
}

// wantLen checks a download's length.
func wantLen(n int64) func(answer) error {
	return func(a answer) error {
		if a.n != n {
			return fmt.Errorf("%d bytes, want %d", a.n, n)
		}
		return nil
	}
}

// wantStatus checks the exact 2xx (206 for a range, 201 for a TUS create).
func wantStatus(st int, next func(answer) error) func(answer) error {
	return func(a answer) error {
		if a.status != st {
			return fmt.Errorf("status %d, want %d", a.status, st)
		}
		if next != nil {
			return next(a)
		}
		return nil
	}
}

func (c *client) publicGet(ctx context.Context) {
	c.do(ctx, req{op: "public GET", method: "GET", path: "/object/public/" + soakPubBucket + "/" + smallKey, check: wantLen(smallSize)})
}

// rangeHeader picks a range inside an object of size bytes, up to 64 KiB long.
func (c *client) rangeHeader(size int) (map[string]string, int64) {
	from := c.rng.IntN(size - 1)
	to := min(from+c.rng.IntN(64<<10), size-1)
	return map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", from, to)}, int64(to - from + 1)
}

func (c *client) publicRange(ctx context.Context) {
	h, n := c.rangeHeader(mediumSize)
	c.do(ctx, req{op: "public GET range", method: "GET", path: "/object/public/" + soakPubBucket + "/" + mediumKey, header: h,
		check: wantStatus(http.StatusPartialContent, wantLen(n))})
}

func (c *client) authGet(ctx context.Context) {
	if c.rng.IntN(4) == 0 {
		c.do(ctx, req{op: "authenticated GET 1 MiB", method: "GET", path: "/object/authenticated/" + soakBucket + "/" + mediumKey, key: true, check: wantLen(mediumSize)})
		return
	}
	c.do(ctx, req{op: "authenticated GET", method: "GET", path: "/object/authenticated/" + soakBucket + "/" + smallKey, key: true, check: wantLen(smallSize)})
}

func (c *client) authRange(ctx context.Context) {
	h, n := c.rangeHeader(mediumSize)
	c.do(ctx, req{op: "authenticated GET range", method: "GET", path: "/object/authenticated/" + soakBucket + "/" + mediumKey, key: true, header: h,
		check: wantStatus(http.StatusPartialContent, wantLen(n))})
}

func (c *client) info(ctx context.Context) {
	c.do(ctx, req{op: "object info", method: "GET", path: "/object/info/authenticated/" + soakBucket + "/" + smallKey, key: true})
}

// newKey names a fresh object in the client's folder.
func (c *client) newKey() string {
	c.seq++
	return fmt.Sprintf("c%d/%d", c.id, c.seq)
}

// full reports whether the client's folder is at its bound; the caller deletes instead.
func (c *client) full(ctx context.Context) bool {
	if len(c.owned) < ownedMax {
		return false
	}
	c.remove(ctx)
	return true
}

func (c *client) upload(ctx context.Context, op string, size int) {
	if c.full(ctx) {
		return
	}
	key := c.newKey()
	if _, ok := c.do(ctx, req{op: op, method: "POST", path: "/object/" + soakBucket + "/" + key, key: true,
		header: binaryHeader, body: soakPayload[:min(size, len(soakPayload))]}); ok {
		c.owned = append(c.owned, key)
	}
}

func (c *client) upsertShared(ctx context.Context) {
	key := fmt.Sprintf("shared/%d", c.rng.IntN(sharedKeys))
	c.do(ctx, req{op: "upsert shared key", method: "POST", path: "/object/" + soakBucket + "/" + key, key: true,
		header: map[string]string{"Content-Type": "application/octet-stream", "x-upsert": "true"}, body: pattern[:4<<10]})
}

var soakListBody = []byte(`{"prefix":"listdir","limit":100,"offset":0,"sortBy":{"column":"name","order":"asc"}}`)

func (c *client) list(ctx context.Context) {
	if c.rng.IntN(2) == 0 {
		c.do(ctx, req{op: "list", method: "POST", path: "/object/list/" + soakBucket, key: true, header: jsonHeader, body: soakListBody,
			check: func(a answer) error { return wantJSONArray(100)(a.status, a.head) }})
		return
	}
	body := fmt.Sprintf(`{"prefix":"c%d","limit":100,"offset":0}`, c.id)
	c.do(ctx, req{op: "list own folder", method: "POST", path: "/object/list/" + soakBucket, key: true, header: jsonHeader, body: []byte(body),
		check: func(a answer) error { return wantJSONArray(-1)(a.status, a.head) }})
}

func (c *client) signDownload(ctx context.Context) {
	a, ok := c.do(ctx, req{op: "sign", method: "POST", path: "/object/sign/" + soakBucket + "/" + smallKey, key: true, header: jsonHeader,
		body: []byte(`{"expiresIn":600}`), check: func(a answer) error { return wantSignedURL(a.status, a.head) }})
	if !ok {
		return
	}
	var v struct {
		SignedURL string `json:"signedURL"`
	}
	_ = json.Unmarshal(a.head, &v)
	c.do(ctx, req{op: "signed GET", method: "GET", path: v.SignedURL, check: wantLen(smallSize)})
}

// pickOwned removes and returns one of the client's objects at random ("" when it has none).
func (c *client) pickOwned() string {
	if len(c.owned) == 0 {
		return ""
	}
	i := c.rng.IntN(len(c.owned))
	k := c.owned[i]
	c.owned = append(c.owned[:i], c.owned[i+1:]...)
	return k
}

func (c *client) move(ctx context.Context) {
	src := c.pickOwned()
	if src == "" {
		c.upload(ctx, "upload small", 2<<10)
		return
	}
	dst := c.newKey()
	body := fmt.Sprintf(`{"bucketId":%q,"sourceKey":%q,"destinationKey":%q}`, soakBucket, src, dst)
	if _, ok := c.do(ctx, req{op: "move", method: "POST", path: "/object/move", key: true, header: jsonHeader, body: []byte(body)}); ok {
		c.owned = append(c.owned, dst)
	} else {
		c.owned = append(c.owned, src) // it may still be there; a delete later finds out
	}
}

func (c *client) copy(ctx context.Context) {
	if len(c.owned) == 0 {
		c.upload(ctx, "upload small", 2<<10)
		return
	}
	if c.full(ctx) {
		return
	}
	src := c.owned[c.rng.IntN(len(c.owned))]
	dst := c.newKey()
	body := fmt.Sprintf(`{"bucketId":%q,"sourceKey":%q,"destinationKey":%q}`, soakBucket, src, dst)
	if _, ok := c.do(ctx, req{op: "copy", method: "POST", path: "/object/copy", key: true, header: jsonHeader, body: []byte(body)}); ok {
		c.owned = append(c.owned, dst)
	}
}

// remove deletes the client's oldest object: one at a time by key, or, one time in four, with
// the prefixes form (O13).
func (c *client) remove(ctx context.Context) {
	if len(c.owned) == 0 {
		c.upload(ctx, "upload small", 2<<10)
		return
	}
	key := c.owned[0]
	c.owned = c.owned[1:]
	if c.rng.IntN(4) == 0 {
		body := fmt.Sprintf(`{"prefixes":[%q]}`, key)
		c.do(ctx, req{op: "delete (prefixes)", method: "DELETE", path: "/object/" + soakBucket, key: true, header: jsonHeader, body: []byte(body),
			check: func(a answer) error { return wantJSONArray(1)(a.status, a.head) }})
		return
	}
	c.do(ctx, req{op: "delete", method: "DELETE", path: "/object/" + soakBucket + "/" + key, key: true})
}

// tus uploads 64 KiB as a resumable upload: the create, then one PATCH.
func (c *client) tus(ctx context.Context) {
	if c.full(ctx) {
		return
	}
	key := c.newKey()
	const size = 64 << 10
	a, ok := c.do(ctx, req{op: "TUS create", method: "POST", path: "/upload/resumable", key: true,
		header: map[string]string{"Tus-Resumable": tusVersion, "Upload-Length": strconv.Itoa(size),
			"Upload-Metadata": uploadMetadata("bucketName", soakBucket, "objectName", key, "contentType", "application/octet-stream")},
		check: wantStatus(http.StatusCreated, func(a answer) error {
			if a.header.Get("Location") == "" {
				return errors.New("no Location")
			}
			return nil
		})})
	if !ok {
		return
	}
	if _, ok := c.do(ctx, req{op: "TUS PATCH", method: "PATCH", path: a.header.Get("Location"), key: true,
		header: map[string]string{"Tus-Resumable": tusVersion, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
		body:   pattern[:size], check: wantStatus(http.StatusNoContent, nil)}); ok {
		c.owned = append(c.owned, key)
	}
}

func (c *client) s3Get(ctx context.Context) {
	u, err := presignS3(ctx, c.r.s, "GET", "/s3/"+soakBucket+"/"+smallKey)
	if err != nil {
		return
	}
	c.do(ctx, req{op: "S3 GetObject", method: "GET", path: u, check: wantLen(smallSize)})
}

func (c *client) s3Put(ctx context.Context) {
	if c.full(ctx) {
		return
	}
	key := c.newKey()
	u, err := presignS3(ctx, c.r.s, "PUT", "/s3/"+soakBucket+"/"+key)
	if err != nil {
		return
	}
	if _, ok := c.do(ctx, req{op: "S3 PutObject", method: "PUT", path: u, header: binaryHeader, body: pattern[:8<<10]}); ok {
		c.owned = append(c.owned, key)
	}
}

// missing reads a key that does not exist: 404 is the expected answer.
func (c *client) missing(ctx context.Context) {
	c.do(ctx, req{op: "GET missing (404 expected)", method: "GET", path: fmt.Sprintf("/object/authenticated/%s/nope/%d", soakBucket, c.rng.Int()), key: true,
		expect: []int{http.StatusNotFound}})
}

// duplicate uploads again to a key the client owns, without upsert: 409 is the expected answer.
func (c *client) duplicate(ctx context.Context) {
	if len(c.owned) == 0 {
		c.upload(ctx, "upload small", 2<<10)
		return
	}
	key := c.owned[c.rng.IntN(len(c.owned))]
	c.do(ctx, req{op: "duplicate upload (409 expected)", method: "POST", path: "/object/" + soakBucket + "/" + key, key: true,
		header: binaryHeader, body: pattern[:1<<10], expect: []int{http.StatusConflict}})
}

// misbehaving kinds, in the order clients are assigned to them.
var misbehavingKinds = []struct {
	name string
	run  func(m *misbehaver, ctx context.Context) (asExpected, serverErr bool, detail string)
}{
	{"slow upload, pauses under the timeout", (*misbehaver).slowUpload},
	{"slow download, reads under the timeout", (*misbehaver).slowDownload},
	{"upload cut mid-body", (*misbehaver).cutUpload},
	{"download cut mid-body", (*misbehaver).cutDownload},
	{"upload stalled past the timeout", (*misbehaver).stalledUpload},
	{"download stalled past the timeout", (*misbehaver).stalledDownload},
}

// misbehaver is one client that talks HTTP/1.1 over a raw connection, to control its pace.
type misbehaver struct {
	id   int
	r    *soakRun
	seq  int
	http *client // for the follow-up checks, with a client's ordinary manners
}

func (m *misbehaver) loop(ctx context.Context, kind int) {
	k := misbehavingKinds[kind]
	for !m.r.stopping.Load() && ctx.Err() == nil {
		start := time.Now()
		ok, serverErr, detail := k.run(m, ctx)
		if ctx.Err() != nil {
			return
		}
		m.r.rec.episode(k.name, start, ok, serverErr, detail)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// dial opens a connection; rcvbuf > 0 shrinks its receive buffer before the handshake, so the
// window it advertises stays small and a client that stops reading stalls the server at once.
func (m *misbehaver) dial(ctx context.Context, rcvbuf int) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	addr := strings.TrimPrefix(m.r.s.base, "http://")
	return d.DialContext(ctx, "tcp", addr)
}

// head writes a request's line and headers.
func (m *misbehaver) head(conn net.Conn, method, path string, header map[string]string, length int64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n", method, path, strings.TrimPrefix(m.r.s.base, "http://"), m.r.s.service)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if length >= 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", length)
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(conn, b.String())
	return err
}

// closeAbruptly closes conn, every other time with a reset instead of a FIN.
func (m *misbehaver) closeAbruptly(conn net.Conn) {
	m.seq++
	if tc, ok := conn.(*net.TCPConn); ok && m.seq%2 == 0 {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// judgeAnswer sorts a misbehaving client's answer: want is the logical status meant.
func judgeAnswer(resp *http.Response, want ...int) (asExpected, serverErr bool, detail string) {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	cl, st := classify(resp.StatusCode, resp.Header.Get("Retry-After") != "", body)
	detail = fmt.Sprintf("answered %d (logical %d): %s", resp.StatusCode, st, short(body))
	switch {
	case cl == classServerError:
		return false, true, detail
	case cl == classBusy:
		return true, false, "shed (503)" // shedding load is always allowed
	}
	for _, w := range want {
		if st == w {
			return true, false, fmt.Sprintf("answered %d", st)
		}
	}
	return false, false, detail
}

// slowUpload upserts 64 KiB: 16 KiB, then 4 KiB every timeout/5, so the whole takes well over
// the timeout while no pause comes near it. 200 is expected.
func (m *misbehaver) slowUpload(ctx context.Context) (bool, bool, string) {
	conn, err := m.dial(ctx, 0)
	if err != nil {
		return false, false, "dial: " + err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * m.r.timeout))
	const size = 64 << 10
	if err := m.head(conn, "POST", fmt.Sprintf("/object/%s/slow/%d", soakBucket, m.id),
		map[string]string{"Content-Type": "application/octet-stream", "x-upsert": "true"}, size); err != nil {
		return false, false, "write headers: " + err.Error()
	}
	for off := 0; off < size; {
		n := 4 << 10
		if off == 0 {
			n = 16 << 10
		} else if !sleepCtx(ctx, m.r.timeout/5) {
			return true, false, ""
		}
		if _, err := conn.Write(pattern[off : off+n]); err != nil {
			return false, false, fmt.Sprintf("write at %d: %v", off, err)
		}
		off += n
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return false, false, "read answer: " + err.Error()
	}
	defer resp.Body.Close()
	return judgeAnswer(resp, http.StatusOK)
}

// stalledUpload sends 16 KiB of a 64 KiB upload, then pauses past the timeout: the server
// answers 408 or closes the connection; storing the object would be the failure.
func (m *misbehaver) stalledUpload(ctx context.Context) (bool, bool, string) {
	conn, err := m.dial(ctx, 0)
	if err != nil {
		return false, false, "dial: " + err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * m.r.timeout))
	m.seq++
	key := fmt.Sprintf("stalled/%d/%d", m.id, m.seq)
	const size = 64 << 10
	if err := m.head(conn, "POST", "/object/"+soakBucket+"/"+key, binaryHeader, size); err != nil {
		return false, false, "write headers: " + err.Error()
	}
	if _, err := conn.Write(pattern[:16<<10]); err != nil {
		return false, false, "write: " + err.Error()
	}
	if !sleepCtx(ctx, m.r.timeout+5*time.Second) {
		return true, false, ""
	}
	_, _ = conn.Write(pattern[16<<10 : size]) // may fail: the server has given up
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return m.absent(ctx, key, "dropped by the server", "closed by the server ("+err.Error()+")")
	}
	defer resp.Body.Close()
	ok, serverErr, detail := judgeAnswer(resp, http.StatusRequestTimeout)
	if !ok || serverErr {
		return ok, serverErr, detail
	}
	return m.absent(ctx, key, detail, detail)
}

// absent checks that an upload that was cut off stored nothing under key. label is the
// episode's outcome when it did not, detail what happened for the message when it did.
func (m *misbehaver) absent(ctx context.Context, key, label, detail string) (bool, bool, string) {
	a, err := m.http.send(ctx, "GET", m.r.s.base+"/object/info/authenticated/"+soakBucket+"/"+key, true, nil, nil)
	if err != nil {
		return false, false, detail + "; info: " + err.Error()
	}
	cl, st := classify(a.status, a.header.Get("Retry-After") != "", a.head, http.StatusNotFound)
	switch cl {
	case classExpected4xx, classBusy:
		return true, false, label
	case classServerError:
		return false, true, fmt.Sprintf("%s; info answered %d (logical %d): %s", detail, a.status, st, short(a.head))
	default:
		return false, false, fmt.Sprintf("%s; then info of %s answered %d (logical %d): the cut upload was stored", detail, key, a.status, st)
	}
}

// cutUpload sends a quarter of a 1 MiB upload and closes the connection.
func (m *misbehaver) cutUpload(ctx context.Context) (bool, bool, string) {
	conn, err := m.dial(ctx, 0)
	if err != nil {
		return false, false, "dial: " + err.Error()
	}
	_ = conn.SetDeadline(time.Now().Add(2 * m.r.timeout))
	m.seq++
	key := fmt.Sprintf("cut/%d/%d", m.id, m.seq)
	if err := m.head(conn, "POST", "/object/"+soakBucket+"/"+key, binaryHeader, 1<<20); err != nil {
		conn.Close()
		return false, false, "write headers: " + err.Error()
	}
	for off := 0; off < 256<<10; off += len(pattern) {
		if _, err := conn.Write(pattern); err != nil {
			conn.Close()
			return false, false, "write: " + err.Error()
		}
	}
	m.closeAbruptly(conn)
	return m.absent(ctx, key, "nothing stored", "cut after 256 KiB")
}

// readDownload sends GET for the large object and reads the answer's headers.
func (m *misbehaver) readDownload(ctx context.Context, conn net.Conn) (*http.Response, error) {
	if err := m.head(conn, "GET", "/object/authenticated/"+soakBucket+"/"+largeKey, nil, -1); err != nil {
		return nil, err
	}
	return http.ReadResponse(bufio.NewReaderSize(conn, 4<<10), nil)
}

// cutDownload reads 128 KiB of the large object and closes the connection.
func (m *misbehaver) cutDownload(ctx context.Context) (bool, bool, string) {
	conn, err := m.dial(ctx, 0)
	if err != nil {
		return false, false, "dial: " + err.Error()
	}
	_ = conn.SetDeadline(time.Now().Add(2 * m.r.timeout))
	resp, err := m.readDownload(ctx, conn)
	if err != nil {
		conn.Close()
		return false, false, "request: " + err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		defer conn.Close()
		return judgeAnswer(resp, http.StatusOK)
	}
	_, err = io.CopyN(io.Discard, resp.Body, 128<<10)
	m.closeAbruptly(conn)
	if err != nil {
		return false, false, "read: " + err.Error()
	}
	return true, false, "cut after 128 KiB"
}

// slowDownload reads the large object 512 KiB at a time, every timeout/10: never idle near
// the timeout, so the whole object must arrive.
func (m *misbehaver) slowDownload(ctx context.Context) (bool, bool, string) {
	conn, err := m.dial(ctx, 16<<10)
	if err != nil {
		return false, false, "dial: " + err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(largeSize/(512<<10)*m.r.timeout/5 + 2*m.r.timeout))
	resp, err := m.readDownload(ctx, conn)
	if err != nil {
		return false, false, "request: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return judgeAnswer(resp, http.StatusOK)
	}
	var got int64
	for got < largeSize {
		n, err := io.CopyN(io.Discard, resp.Body, 512<<10)
		got += n
		if err != nil {
			return false, false, fmt.Sprintf("read %d of %d bytes: %v", got, largeSize, err)
		}
		if !sleepCtx(ctx, m.r.timeout/10) {
			return true, false, ""
		}
	}
	return true, false, "completed"
}

// stalledDownload reads 64 KiB of the large object and stops reading past the timeout: the
// server must drop the connection, so the rest never arrives.
func (m *misbehaver) stalledDownload(ctx context.Context) (bool, bool, string) {
	conn, err := m.dial(ctx, 16<<10)
	if err != nil {
		return false, false, "dial: " + err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(6 * m.r.timeout))
	resp, err := m.readDownload(ctx, conn)
	if err != nil {
		return false, false, "request: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return judgeAnswer(resp, http.StatusOK)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 64<<10); err != nil {
		return false, false, "read: " + err.Error()
	}
	if !sleepCtx(ctx, m.r.timeout+5*time.Second) {
		return true, false, ""
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && 64<<10+n == largeSize {
		return false, false, "the whole object arrived after a stall past the write timeout"
	}
	return true, false, "dropped by the server"
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
