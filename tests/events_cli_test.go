package tests

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/tests/testdb"
)

// TestCLIEventsKilledMidDelivery: `storage serve` killed (SIGKILL) while the receiver holds one
// of its deliveries loses nothing: the next server delivers the rest, the held event included
// (duplicates allowed, gaps not), in order per object, with what changed while no server ran.
func TestCLIEventsKilledMidDelivery(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	db := testdb.New(t)
	r := newReceiver(t)
	held := make(chan int64, 1)
	var once sync.Once
	r.setAnswer(func(h hook) int {
		if h.Name == "c.txt" {
			holding := false
			once.Do(func() { holding = true })
			if holding {
				held <- h.ID
				<-h.Ctx.Done() // until the server is killed and its connection drops
				return http.StatusServiceUnavailable
			}
		}
		return http.StatusOK
	})
	env := func() []string {
		return cliEnv("DATABASE_URL="+db.URL, "AUTH_JWT_SECRET=events-cli-secret", "SERVER_HOST=127.0.0.1",
			"SERVER_PORT="+cliFreePort(t), "STORAGE_FILE_BACKEND_PATH="+filepath.Join(cliTempDir(t), "blobs"),
			"STORAGE_DATA_DIR="+filepath.Join(cliTempDir(t), "data"), "WEBHOOK_URL="+r.url, "WEBHOOK_TIMEOUT=5s")
	}

	s := cliServe(t, bin, "", env())
	s.waitReady()
	code, body := cliHTTP(t, http.MethodPost, s.url+"/bucket", s.service, `{"name":"ev"}`)
	require.Equal(t, http.StatusOK, code, body)
	for _, k := range []string{"a.txt", "b.txt", "c.txt", "d.txt"} {
		code, body = cliHTTP(t, http.MethodPost, s.url+"/object/ev/"+k, s.service, `"v1"`)
		require.Equal(t, http.StatusOK, code, body)
	}
	for _, k := range []string{"c.txt", "a.txt"} {
		code, body = cliHTTP(t, http.MethodPut, s.url+"/object/ev/"+k, s.service, `"v2"`)
		require.Equal(t, http.StatusOK, code, body)
	}
	select {
	case <-held:
	case <-time.After(eventsWait):
		t.Fatalf("no delivery of c.txt's event within %v\nstderr:\n%s", eventsWait, cliTail(s.stderr.String()))
	}
	s.stop(syscall.SIGKILL)

	// Changes while no server runs are recorded all the same.
	admin(t, db, `update storage.objects set name = 'e.txt' where bucket_id = 'ev' and name = 'c.txt'`)
	admin(t, db, `delete from storage.objects where bucket_id = 'ev' and name = 'b.txt'`)

	s2 := cliServe(t, bin, "", env())
	s2.waitReady()
	all := sqlEventList(t, db, 0)
	require.Equal(t, []string{
		"ObjectCreated:Post ev/a.txt", "ObjectCreated:Post ev/b.txt", "ObjectCreated:Post ev/c.txt", "ObjectCreated:Post ev/d.txt",
		"ObjectCreated:Put ev/c.txt", "ObjectCreated:Put ev/a.txt",
		"ObjectRemoved:Move ev/c.txt", "ObjectCreated:Move ev/e.txt", "ObjectRemoved:Delete ev/b.txt",
	}, sqlEventKeys(all))
	r.waitAll(eventIDs(all))
	requireOrderedPerObject(t, r.accepted(), all)
	require.Equal(t, 0, s2.stop(syscall.SIGTERM))
	require.False(t, strings.Contains(s2.stderr.String(), "level=ERROR"), "stderr:\n%s", cliTail(s2.stderr.String()))
}
