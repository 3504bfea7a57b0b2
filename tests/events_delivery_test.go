package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/events"
)

// Webhook delivery (package events) against a real receiver: a net/http server on loopback
// that records every request, can refuse, hold or inspect them, and notices two deliveries of
// one event in flight at once.

// eventsWait bounds every wait for deliveries: generous, since the machine may be loaded.
const eventsWait = 60 * time.Second

// hook is one webhook request as the receiver got it.
type hook struct {
	Ctx    context.Context // the request's: done when the sender hangs up
	ID     int64
	Header http.Header
	Body   map[string]any
	Type   string // body.event.type
	Bucket string // body.event.payload.bucketId
	Name   string // body.event.payload.name
}

// receiver is the test's webhook endpoint.
type receiver struct {
	t   *testing.T
	url string

	mu       sync.Mutex
	got      []hook         // accepted requests, in arrival order
	refused  int            // requests answered with an error
	inFlight map[int64]int  // requests being handled, per event id
	overlaps []int64        // event ids delivered twice at once
	changed  chan struct{}  // signalled after each request
	answer   func(hook) int // status to answer (default 204); called outside the lock
	onEvent  func(hook)     // called before answering, outside the lock
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, inFlight: map[int64]int{}, changed: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/hooks/storage"
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	b, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h := hook{Ctx: req.Context(), Header: req.Header.Clone()}
	h.ID, _ = strconv.ParseInt(req.Header.Get(events.EventIDHeader), 10, 64)
	if err := json.Unmarshal(b, &h.Body); err == nil {
		ev, _ := h.Body["event"].(map[string]any)
		p, _ := ev["payload"].(map[string]any)
		h.Type, _ = ev["type"].(string)
		h.Bucket, _ = p["bucketId"].(string)
		h.Name, _ = p["name"].(string)
	}
	r.mu.Lock()
	r.inFlight[h.ID]++
	if r.inFlight[h.ID] > 1 {
		r.overlaps = append(r.overlaps, h.ID)
	}
	answer, onEvent := r.answer, r.onEvent
	r.mu.Unlock()
	if onEvent != nil {
		onEvent(h)
	}
	status := http.StatusNoContent
	if answer != nil {
		status = answer(h)
	}
	r.mu.Lock()
	r.inFlight[h.ID]--
	if status/100 == 2 {
		r.got = append(r.got, h)
	} else {
		r.refused++
	}
	r.mu.Unlock()
	w.WriteHeader(status)
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// setAnswer replaces how the receiver answers.
func (r *receiver) setAnswer(f func(hook) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

// waitFor waits until cond holds over what the receiver has (under its lock), or fails.
func (r *receiver) waitFor(what string, cond func(got []hook, refused int) bool) {
	r.t.Helper()
	deadline := time.After(eventsWait)
	for {
		r.mu.Lock()
		ok := cond(r.got, r.refused)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Fatalf("receiver: %s not seen within %v; got %d accepted, %d refused: %v", what, eventsWait, len(r.got), r.refused, hookKeys(r.got))
		}
	}
}

// waitAll waits until every event of storage.events (ids) has been accepted at least once.
func (r *receiver) waitAll(ids []int64) {
	r.t.Helper()
	r.waitFor("every event", func(got []hook, _ int) bool {
		seen := map[int64]bool{}
		for _, h := range got {
			seen[h.ID] = true
		}
		for _, id := range ids {
			if !seen[id] {
				return false
			}
		}
		return true
	})
}

// accepted is a copy of the accepted requests.
func (r *receiver) accepted() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func hookKeys(hs []hook) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, strconv.FormatInt(h.ID, 10)+" "+h.Type+" "+h.Bucket+"/"+h.Name)
	}
	return out
}

// requireOrderedPerObject: per object, the first acceptance of each event comes in id order
// (a duplicate may follow later), and every event of storage.events was accepted with its
// name and object.
func requireOrderedPerObject(t *testing.T, got []hook, want []sqlEvent) {
	t.Helper()
	byID := map[int64]sqlEvent{}
	for _, e := range want {
		byID[e.ID] = e
	}
	first := map[int64]bool{}
	last := map[string]int64{}
	for _, h := range got {
		e, ok := byID[h.ID]
		require.True(t, ok, "event %d was not recorded: %v", h.ID, hookKeys(got))
		require.Equal(t, e.Type+" "+e.Bucket+"/"+e.Name, h.Type+" "+h.Bucket+"/"+h.Name, "event %d", h.ID)
		if first[h.ID] {
			continue // an at-least-once duplicate
		}
		first[h.ID] = true
		k := h.Bucket + "/" + h.Name
		require.Greater(t, h.ID, last[k], "events of %s out of order: %v", k, hookKeys(got))
		last[k] = h.ID
	}
	require.Len(t, first, len(want), "every event delivered: %v", hookKeys(got))
}

// eventIDs lists the ids of evs.
func eventIDs(evs []sqlEvent) []int64 {
	ids := []int64{}
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

// startDispatcher runs a dispatcher on pool, with test-sized backoffs, until stop is called or
// t ends; stop returns once it has stopped (and given its lease up).
func startDispatcher(t *testing.T, pool *pgxpool.Pool, url string, adjust ...func(*events.Config)) (d *events.Dispatcher, stop func()) {
	t.Helper()
	cfg := events.Config{DB: pool, URL: url, APIKey: "hook-secret", Timeout: 5 * time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond, BacklogInterval: 50 * time.Millisecond,
		Tenant: events.Tenant{Ref: "proj-ref", Host: "storage.example.com"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, a := range adjust {
		a(&cfg)
	}
	d = events.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return d, stop
}

// runDispatcher runs a dispatcher on pool until t ends.
func runDispatcher(t *testing.T, pool *pgxpool.Pool, url string, adjust ...func(*events.Config)) *events.Dispatcher {
	t.Helper()
	d, _ := startDispatcher(t, pool, url, adjust...)
	return d
}

// eventsBucket creates bucket id (private) through REST.
func eventsBucket(t *testing.T, b *httpBundle, id string) {
	t.Helper()
	requireOKJSON(t, b.do(t, http.MethodPost, "/bucket", b.service, `{"name":"`+id+`"}`))
}

// eventsUpload uploads content to bucket/key through REST (POST creates, PUT replaces).
func eventsUpload(t *testing.T, b *httpBundle, method, bucket, key, content string) {
	t.Helper()
	requireOKJSON(t, b.do(t, method, "/object/"+bucket+"/"+key, b.service, content, withHeader("Content-Type", "text/plain")))
}

// TestEventsWebhookDeliversEveryChange: REST uploads, an overwrite, a move, a copy, deletes and
// a SQL caller's DELETE all reach the receiver, each under the reference's name, in order per
// object, in the reference's request shape; the bytes an ObjectCreated event names are in the
// store when it arrives.
func TestEventsWebhookDeliversEveryChange(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	r := newReceiver(t)
	ctx := context.Background()
	var unreadable []string
	var mu sync.Mutex
	r.onEvent = func(h hook) {
		ev := h.Body["event"].(map[string]any)
		p := ev["payload"].(map[string]any)
		if v, ok := p["version"].(string); ok && h.Type != "" && h.Type[:len("ObjectCreated")] == "ObjectCreated" {
			if _, err := b.blobs.Size(ctx, blob.VersionKey(v)); err != nil {
				mu.Lock()
				unreadable = append(unreadable, h.Type+" "+h.Name+": "+err.Error())
				mu.Unlock()
			}
		}
	}
	runDispatcher(t, b.db.Pool, r.url)

	eventsBucket(t, b, "ev")
	eventsUpload(t, b, http.MethodPost, "ev", "a.txt", "one")
	eventsUpload(t, b, http.MethodPut, "ev", "a.txt", "two")
	eventsUpload(t, b, http.MethodPost, "ev", "b.txt", "bee")
	requireOKJSON(t, b.do(t, http.MethodPost, "/object/move", b.service, `{"bucketId":"ev","sourceKey":"a.txt","destinationKey":"c.txt"}`))
	requireOKJSON(t, b.do(t, http.MethodPost, "/object/copy", b.service, `{"bucketId":"ev","sourceKey":"b.txt","destinationKey":"d.txt"}`))
	requireOKJSON(t, b.do(t, http.MethodDelete, "/object/ev/d.txt", b.service, ""))
	requireOKJSON(t, b.do(t, http.MethodDelete, "/object/ev", b.service, `{"prefixes":["c.txt"]}`))
	admin(t, b.db, `delete from storage.objects where bucket_id = 'ev' and name = 'b.txt'`)

	want := sqlEventList(t, b.db, 0)
	require.Equal(t, []string{
		"ObjectCreated:Post ev/a.txt",
		"ObjectCreated:Put ev/a.txt",
		"ObjectCreated:Post ev/b.txt",
		"ObjectRemoved:Move ev/a.txt",
		"ObjectCreated:Move ev/c.txt",
		"ObjectCreated:Copy ev/d.txt",
		"ObjectRemoved:Delete ev/d.txt",
		"ObjectRemoved:Delete ev/c.txt",
		"ObjectRemoved:Delete ev/b.txt",
	}, sqlEventKeys(want))
	r.waitAll(eventIDs(want))
	got := r.accepted()
	requireOrderedPerObject(t, got, want)
	require.Empty(t, unreadable, "an ObjectCreated event named bytes the store does not have")

	// The request, exactly: headers and body.
	h := got[slices.IndexFunc(got, func(h hook) bool { return h.ID == want[1].ID })]
	require.Equal(t, "application/json", h.Header.Get("Content-Type"))
	require.Equal(t, "Bearer hook-secret", h.Header.Get("Authorization"))
	sentAt, _ := h.Body["sentAt"].(string)
	require.Regexp(t, jsTimestamp, sentAt)
	var created time.Time
	require.NoError(t, b.db.Pool.QueryRow(ctx, `select created_at from storage.events where id = $1`, want[1].ID).Scan(&created))
	payload, err := json.Marshal(want[1].Payload)
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"Webhook","event":{"$version":"v1","type":"ObjectCreated:Put","payload":`+string(payload)+
		`,"applyTime":`+strconv.FormatInt(created.UnixMilli(), 10)+`},"sentAt":"`+sentAt+`","tenant":{"ref":"proj-ref","host":"storage.example.com"}}`,
		string(mustJSON(t, h.Body)))
	require.Equal(t, "standard", want[1].Payload["uploadType"])
	// A request's events carry its id, the old key's too.
	reqID := want[4].Payload["reqId"]
	require.Regexp(t, uuidPattern, reqID)
	require.Equal(t, map[string]any{"name": "a.txt", "bucketId": "ev", "version": *want[3].Version, "reqId": reqID}, want[4].Payload["oldObject"])

	// Delivered means marked so.
	require.Eventually(t, func() bool {
		for _, e := range sqlEventList(t, b.db, 0) {
			if !e.Delivered {
				return false
			}
		}
		return true
	}, eventsWait, 20*time.Millisecond)
}

// TestEventsWebhookReceiverDown: a receiver that refuses for a while (errors, then a closed
// port would be the same) gets everything once it accepts, in order per object, and nothing
// was dropped meanwhile; the refused attempts are counted and their errors kept.
func TestEventsWebhookReceiverDown(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	r := newReceiver(t)
	r.setAnswer(func(hook) int { return http.StatusServiceUnavailable })
	d := runDispatcher(t, db.Pool, r.url)

	for i := range 5 {
		admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('priv', $1, 'v1'), ('pub', $1, 'v1')`, "k"+strconv.Itoa(i))
		admin(t, db, `update storage.objects set version = 'v2' where name = $1`, "k"+strconv.Itoa(i))
	}
	r.waitFor("several refusals", func(_ []hook, refused int) bool { return refused >= 10 })
	evs := sqlEventList(t, db, 0)
	require.Len(t, evs, 20)
	var failed int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`select count(*) from storage.events where last_error = 'webhook answered HTTP 503' and delivered_at is null`).Scan(&failed))
	require.Positive(t, failed)
	require.Positive(t, d.Stats().FailedAttempts)
	require.Eventually(t, func() bool { s := d.Stats(); return s.Leader && s.Backlog == 20 && s.OldestUndelivered > 0 },
		eventsWait, 10*time.Millisecond, "Stats: %+v", d.Stats())
	require.Empty(t, r.accepted())

	r.setAnswer(nil)
	admin(t, db, `delete from storage.objects where name = 'k0'`)
	evs = sqlEventList(t, db, 0)
	require.Len(t, evs, 22)
	r.waitAll(eventIDs(evs))
	requireOrderedPerObject(t, r.accepted(), evs)
	require.Eventually(t, func() bool { s := d.Stats(); return s.Leader && s.Backlog == 0 && s.Delivered >= 22 },
		eventsWait, 20*time.Millisecond)
}

// TestEventsWebhookOneRefusedObject: an object whose events the receiver refuses waits alone:
// the other objects' events are delivered meanwhile, and its own, in order, once accepted.
func TestEventsWebhookOneRefusedObject(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	r := newReceiver(t)
	r.setAnswer(func(h hook) int {
		if h.Name == "poison" {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	runDispatcher(t, db.Pool, r.url)
	admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('priv', 'poison', 'v1')`)
	admin(t, db, `update storage.objects set version = 'v2' where name = 'poison'`)
	r.waitFor("a refusal", func(_ []hook, refused int) bool { return refused >= 1 })
	for i := range 20 {
		admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('priv', $1, 'v1')`, "ok"+strconv.Itoa(i))
	}
	others := sqlEventList(t, db, 2)
	r.waitAll(eventIDs(others))
	for _, h := range r.accepted() {
		require.NotEqual(t, "poison", h.Name)
	}
	r.setAnswer(nil)
	all := sqlEventList(t, db, 0)
	r.waitAll(eventIDs(all))
	requireOrderedPerObject(t, r.accepted(), all)
}

// TestEventsTwoDispatchers: two servers' dispatchers on one database deliver every event, and
// never one event twice at the same time; when the leader stops, the other takes over.
func TestEventsTwoDispatchers(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	r := newReceiver(t)
	// Slow answers widen the window in which two senders would overlap.
	r.onEvent = func(hook) { time.Sleep(2 * time.Millisecond) }
	short := func(c *events.Config) { c.LeaseTTL = 3 * time.Second; c.Timeout = time.Second }
	d1, stop1 := startDispatcher(t, db.Pool, r.url, short)
	d2, stop2 := startDispatcher(t, db.Pool, r.url, short)

	for i := range 40 {
		admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('priv', $1, 'v1'), ('pub', $1, 'v1')`,
			"k"+strconv.Itoa(i%7)+"/"+strconv.Itoa(i))
	}
	r.waitAll(eventIDs(sqlEventList(t, db, 0)))
	s1, s2 := d1.Stats(), d2.Stats()
	require.NotEqual(t, s1.Leader, s2.Leader, "exactly one leads")
	require.Equal(t, uint64(0), min(s1.Delivered, s2.Delivered), "only the leader delivered")

	// The leader stops (a server shutting down gives its lease up): the other takes over.
	follower := d2
	if s1.Leader {
		stop1()
	} else {
		follower = d1
		stop2()
	}
	admin(t, db, `update storage.objects set version = 'v2'`)
	all := sqlEventList(t, db, 0)
	r.waitAll(eventIDs(all))
	require.True(t, follower.Stats().Leader)
	require.Positive(t, follower.Stats().Delivered)
	requireOrderedPerObject(t, r.accepted(), all)
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(t, r.overlaps, "an event was being delivered twice at once")
}

// TestEventsWebhookFlakyReceiver: a receiver that refuses the first attempt of every other
// event still gets every event in order per object: an object's later events wait for its
// refused one.
func TestEventsWebhookFlakyReceiver(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	r := newReceiver(t)
	var mu sync.Mutex
	tried := map[int64]bool{}
	r.setAnswer(func(h hook) int {
		mu.Lock()
		defer mu.Unlock()
		again := tried[h.ID]
		tried[h.ID] = true
		if h.ID%2 == 1 && !again {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	for i := range 10 {
		name := "k" + strconv.Itoa(i)
		admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('priv', $1, 'v1')`, name)
		admin(t, db, `update storage.objects set version = 'v2' where name = $1`, name)
		admin(t, db, `update storage.objects set metadata = '{"a":1}' where name = $1`, name)
		admin(t, db, `delete from storage.objects where name = $1`, name)
	}
	runDispatcher(t, db.Pool, r.url)
	all := sqlEventList(t, db, 0)
	require.Len(t, all, 40)
	r.waitAll(eventIDs(all))
	requireOrderedPerObject(t, r.accepted(), all)
}

// TestEventsDoors: each door's operations emit the reference's event names and uploadType, and
// all reach the receiver: TUS uploads (Post, then Put with x-upsert), S3 PutObject (Post, then
// Put), CompleteMultipartUpload (Post), CopyObject (Copy), DeleteObject and DeleteObjects
// (Removed:Delete).
func TestEventsDoors(t *testing.T) {
	t.Parallel()
	o := &objEnv{setupHTTP(t)}
	o.mkBucket(t, `{"name":"b"}`)
	r := newReceiver(t)
	runDispatcher(t, o.db.Pool, r.url)
	ctx := context.Background()

	loc := o.tusCreate(t, o.service, "b", "t.txt", 5)
	require.Equal(t, http.StatusNoContent, o.tusPatch(t, loc, o.service, 0, []byte("hello")).Status)
	loc = o.tusCreate(t, o.service, "b", "t.txt", 3, "x-upsert", "true")
	require.Equal(t, http.StatusNoContent, o.tusPatch(t, loc, o.service, 0, []byte("bye"), "x-upsert", "true").Status)

	c := o.s3Service()
	s3Put(t, c, "b", "s.txt", []byte("one"))
	s3Put(t, c, "b", "s.txt", []byte("two"))
	mp, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("m.bin")})
	require.NoError(t, err)
	part, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("b"), Key: aws.String("m.bin"), UploadId: mp.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("part"))})
	require.NoError(t, err)
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("m.bin"),
		UploadId: mp.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}})
	require.NoError(t, err)
	_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("s2.txt"), CopySource: aws.String("b/s.txt")})
	require.NoError(t, err)
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String("s2.txt")})
	require.NoError(t, err)
	_, err = c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("b"),
		Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String("s.txt")}, {Key: aws.String("m.bin")}}}})
	require.NoError(t, err)

	want := sqlEventList(t, o.db, 0)
	require.Equal(t, []string{
		"ObjectCreated:Post b/t.txt",
		"ObjectCreated:Put b/t.txt",
		"ObjectCreated:Post b/s.txt",
		"ObjectCreated:Put b/s.txt",
		"ObjectCreated:Post b/m.bin",
		"ObjectCreated:Copy b/s2.txt",
		"ObjectRemoved:Delete b/s2.txt",
		"ObjectRemoved:Delete b/m.bin",
		"ObjectRemoved:Delete b/s.txt",
	}, sqlEventKeys(want))
	var uploadTypes []any
	for _, e := range want[:6] {
		uploadTypes = append(uploadTypes, e.Payload["uploadType"])
	}
	require.Equal(t, []any{"resumable", "resumable", "s3", "s3", "s3", "s3"}, uploadTypes)
	r.waitAll(eventIDs(want))
	requireOrderedPerObject(t, r.accepted(), want)
}
