package tests

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
)

// RLS is the only door (hardening findings 1, 3 and 6): whatever path a write takes, it is
// authorized as its caller when it happens, and no request role can see, lock or write past
// its policies through a SECURITY DEFINER function.

// sharedFolderPolicies: authenticated users may create objects in shared/ and read them all,
// but update (overwrite) only the rows they own.
const sharedFolderPolicies = `
	create policy shared_read on storage.objects for select to authenticated
	  using ((storage.foldername(name))[1] = 'shared');
	create policy shared_insert on storage.objects for insert to authenticated
	  with check ((storage.foldername(name))[1] = 'shared' and owner_id = (select auth.uid())::text);
	create policy shared_update on storage.objects for update to authenticated
	  using (owner_id = (select auth.uid())::text);`

// TestHTTPRLSStolenVersion is finding 1 end to end: userA, allowed to write only in their own
// folder, points a row of their own at userB's object's version and downloads it. The write is
// refused, and userA's key still serves userA's bytes.
func TestHTTPRLSStolenVersion(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "OwnFolderPolicies", func(t *testing.T, o *objEnv) {
			admin(t, o.db, `
				create policy own_read on storage.objects for select to authenticated
				  using ((storage.foldername(name))[1] = (select auth.uid())::text);
				create policy own_insert on storage.objects for insert to authenticated
				  with check ((storage.foldername(name))[1] = (select auth.uid())::text);
				create policy own_update on storage.objects for update to authenticated
				  using ((storage.foldername(name))[1] = (select auth.uid())::text);`)
			mine, secret := userA.Sub+"/mine.txt", userB.Sub+"/secret.txt"
			requireUploaded(t, o.upload(t, "POST", "b", mine, o.userA, "mine"), "b/"+mine)
			requireUploaded(t, o.upload(t, "POST", "b", secret, o.userB, "the secret"), "b/"+secret)
			victim := o.version(t, "b", secret)
			for _, stmt := range []string{
				`update storage.objects set version = $1 where name = '` + mine + `'`,
				`insert into storage.objects (bucket_id, name, owner_id, version)
				 values ('b', '` + userA.Sub + `/stolen.txt', '` + userA.Sub + `', $1)`,
			} {
				requireSQLState(t, exec(t, o.db, userA, stmt, victim), "42501", "")
			}
			requireBytes(t, o.get(t, "/object/authenticated/b/"+mine, o.userA), "mine")
			requireAPIError(t, o.get(t, "/object/authenticated/b/"+userA.Sub+"/stolen.txt", o.userA), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/authenticated/b/"+secret, o.userA), 400, errNoSuchKey)
			o.requireBlobsAccounted(t)
		})
	})
}

// TestHTTPRLSOverwriteAtCommit is finding 3: policies used to be checked only when an upload
// started (or its URL was signed) and the row was written as the service, with upsert. A
// signed upsert URL minted before a key existed, or a slow direct upload, then replaced an
// object another user created in the meantime, and took its ownership — although a direct
// overwrite is refused. The commit now runs as the uploader (or the URL's signer), against the
// row as it is then.
func TestHTTPRLSOverwriteAtCommit(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "SignedUpsertURL", func(t *testing.T, o *objEnv) {
			admin(t, o.db, sharedFolderPolicies)
			// userA signs an upsert URL while shared/k does not exist: allowed.
			url, _ := o.signUpload(t, "b", "shared/k", o.userA, withHeader("x-upsert", "true"))
			// userB creates shared/k; userA could not overwrite it directly.
			id := requireUploaded(t, o.upload(t, "POST", "b", "shared/k", o.userB, "B's"), "b/shared/k")
			requireAPIError(t, o.upload(t, "PUT", "b", "shared/k", o.userA, "A's"), 400, errRLSInsert)
			// Nor through the URL signed before.
			requireAPIError(t, o.putSigned(t, url, "A's"), 400, errRLSInsert)
			require.Equal(t, "B's", o.content(t, "b", "shared/k"))
			require.Equal(t, id+" "+userB.Sub, o.row(t, "b", "shared/k", "id::text || ' ' || owner_id"))
			o.requireBlobsAccounted(t)
			// A URL userB signs still works for userB's own object.
			url, _ = o.signUpload(t, "b", "shared/k", o.userB, withHeader("x-upsert", "true"))
			requireOKBody(t, o.putSigned(t, url, "B's again"), `{"Key":"b/shared/k"}`)
			require.Equal(t, "B's again", o.content(t, "b", "shared/k"))
		})

		be.run(t, "SlowDirectUpload", func(t *testing.T, o *objEnv) {
			admin(t, o.db, sharedFolderPolicies)
			// userA starts an upsert of shared/k, which does not exist yet, and stalls
			// mid-body (past what the server reads before the handler runs)…
			half := strings.Repeat("A", 128<<10)
			body, feed := io.Pipe()
			done := make(chan httpResponse, 1)
			go func() {
				done <- o.send(t, "PUT", objPath("b", "shared/k"), o.userA, body, int64(2*len(half)))
			}()
			_, err := io.WriteString(feed, half)
			require.NoError(t, err)
			o.waitFor(t, "userA's upload to be in flight", func() bool { return len(o.inFlight(t)) == 1 })
			// …while userB creates the key.
			requireUploaded(t, o.upload(t, "POST", "b", "shared/k", o.userB, "B's"), "b/shared/k")
			// userA's bytes complete: the commit, as userA, would update userB's row. Refused.
			_, err = io.WriteString(feed, half)
			require.NoError(t, err)
			require.NoError(t, feed.Close())
			requireAPIError(t, <-done, 400, errRLSInsert)
			require.Equal(t, "B's", o.content(t, "b", "shared/k"))
			require.Equal(t, userB.Sub, o.row(t, "b", "shared/k", "owner_id"))
			o.requireBlobsAccounted(t)
		})
	})
}

// TestHTTPRLSRequestRolesCannotStall is finding 6: anon could call
// bucket_object_count(id, n, true) and hold a lock that blocked every upload to the bucket, and
// take the collector's advisory lock, stopping collection and bucket-empty jobs. Neither is
// possible now: the counting helper answers only bucket_delete and bucket_empty and locks
// nothing, the lease the collector elects its leader with is out of request roles' reach, and
// an advisory lock held on the old key changes nothing.
func TestHTTPRLSRequestRolesCannotStall(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	ctx := context.Background()
	held, err := o.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer held.Rollback(ctx)
	sql, args := proxy.Prelude(asAnon, "test")
	_, err = held.Exec(ctx, sql, args...)
	require.NoError(t, err)
	// The old way to hold the bucket: gone.
	_, err = held.Exec(ctx, `select storage_internal.bucket_object_count('b', 1)`)
	requireSQLState(t, err, "42501", "storage_internal.bucket_object_count may only be called by storage.bucket_delete and storage.bucket_empty")
	require.NoError(t, held.Rollback(ctx))

	// anon holds the old leader key and tries the lease: the collector works regardless.
	conn, err := o.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `select pg_advisory_lock(8319401268004373761)`) // the key collectors once used
	require.NoError(t, err)
	defer conn.Exec(ctx, `select pg_advisory_unlock_all()`) //nolint:errcheck
	err = asRole(t, o.db, asAnon, false, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `select storage_internal.collector_lease_take('anon', interval '1 hour')`)
		return err
	})
	requireSQLState(t, err, "42501", "")
	o.mustUpload(t, "b", "k", "x")
	require.Equal(t, http.StatusOK, o.do(t, "POST", "/bucket/b/empty", o.service, "").Status)
	o.waitFor(t, "the server's collector to work the empty job", func() bool { return len(o.objectNames(t)) == 0 })
}

// TestHTTPLongKeys: keys beyond 1024 bytes are InvalidKey (S3's limit); beyond ~2.7 kB they
// used to reach the unique index and fail with an internal error.
func TestHTTPLongKeys(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	ok := strings.Repeat("k", 1024)
	requireUploaded(t, o.upload(t, "POST", "b", ok, o.service, "x"), "b/"+ok)
	for _, n := range []int{1025, 3000} {
		key := strings.Repeat("k", n)
		requireAPIError(t, o.upload(t, "POST", "b", key, o.service, "x"), 400, errInvalidKey(key))
		requireAPIError(t, o.get(t, "/object/authenticated/b/"+key, o.service), 400, errInvalidKey(key))
	}
	o.requireNothingStored(t, "b/"+ok)
}
