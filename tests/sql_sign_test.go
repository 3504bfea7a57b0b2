package tests

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// The signed-URL SQL API (sql/api/url_sign.sql, sql/006_signing_key_create.sql) as SQL callers
// use it: storage.url_sign, url_sign_many and url_sign_upload under the production prelude
// (anon, authenticated, service_role), the tokens they mint (verified with golang-jwt and the
// secret, and over HTTP by the proxy), and the fence around the secret: storage.signing_key and
// storage.signing_secret_set are the owner's alone, and storage_internal.url_token signs only for the
// three url_sign functions.

// sqlSignSecret is the secret the SQL tests store (the HTTP ones use httpJWTSecret).
const sqlSignSecret = "sql-sign-test-secret-of-at-least-32-bytes"

// sqlSignRoles are the request roles a SQL caller may act as.
var sqlSignRoles = []proxy.Identity{asAnon, userA, asService}

// sqlSignDB returns a fresh database with the signing secret set, a private bucket "b"
// holding "k" (owned by userA) and "other" (owned by userB), and an empty bucket "c".
func sqlSignDB(t *testing.T) *testdb.DB {
	t.Helper()
	db := testdb.New(t)
	admin(t, db, `select storage.signing_secret_set($1)`, sqlSignSecret)
	admin(t, db, `insert into storage.buckets (id, name) values ('b', 'b'), ('c', 'c')`)
	sqlObjInsert(t, db, "b", "k", userA.Sub, "v1")
	sqlObjInsert(t, db, "b", "other", userB.Sub, "v2")
	return db
}

// sqlSignOne runs a query returning one text value as id (rolled back).
func sqlSignOne(t *testing.T, db *testdb.DB, id proxy.Identity, sql string, args ...any) (string, error) {
	t.Helper()
	out, err := sqlObjQuery(t, db, id, false, sql, args...)
	if err != nil {
		return "", err
	}
	require.Len(t, out, 1)
	return out[0], nil
}

// sqlSignVerify verifies token with golang-jwt (HS256, secret) and returns its claims, numbers
// exact, after checking the header.
func sqlSignVerify(t *testing.T, token, secret string) map[string]any {
	t.Helper()
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt()).
		Parse(token, func(*jwt.Token) (any, error) { return []byte(secret), nil })
	require.NoError(t, err, "token %s", token)
	require.True(t, parsed.Valid)
	header, claims := signDecode(t, token)
	require.Equal(t, map[string]any{"alg": "HS256", "typ": "JWT"}, header)
	return claims
}

// sqlSignRequireClaims asserts claims: exactly want plus iat ≈ now and exp = iat + lifetime.
func sqlSignRequireClaims(t *testing.T, claims map[string]any, lifetime int64, want map[string]any) {
	t.Helper()
	iat, exp := signClaimInt(t, claims, "iat"), signClaimInt(t, claims, "exp")
	require.Equal(t, lifetime, exp-iat, "exp - iat")
	require.InDelta(t, time.Now().Unix(), iat, 10)
	rest := map[string]any{}
	for k, v := range claims {
		if k != "iat" && k != "exp" {
			rest[k] = v
		}
	}
	require.Equal(t, want, rest)
}

// signPathEscape percent-encodes a key as the signed URLs do: every character JavaScript's
// encodeURIComponent escapes, except '/'.
func signPathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// sqlSignRow is one row of storage.url_sign_many.
type sqlSignRow struct {
	Path      string
	SignedURL *string
	Error     *string
}

// expiresIn is an integer or nil.
func sqlSignMany(t *testing.T, db *testdb.DB, id proxy.Identity, bucket string, names []string, expiresIn any) ([]sqlSignRow, error) {
	t.Helper()
	var out []sqlSignRow
	err := asRole(t, db, id, false, func(tx pgx.Tx) error {
		rows, err := tx.Query(context.Background(),
			`select path, signed_url, error from storage.url_sign_many(bucket_id => $1, names => $2, expires_in => $3)`, bucket, names, expiresIn)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (sqlSignRow, error) {
			var s sqlSignRow
			return s, r.Scan(&s.Path, &s.SignedURL, &s.Error)
		})
		return err
	})
	return out, err
}

// sqlSignUpload calls storage.url_sign_upload as id (rolled back) and returns url and token.
func sqlSignUpload(t *testing.T, db *testdb.DB, id proxy.Identity, sql string, args ...any) (string, string, error) {
	t.Helper()
	var url, token string
	err := asRole(t, db, id, false, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), sql, args...).Scan(&url, &token)
	})
	return url, token, err
}

const sqlSignQ = `select storage.url_sign(bucket_id => $1, name => $2, expires_in => $3)`

// ---------------------------------------------------------------------------------------------

func TestSQLSignURL(t *testing.T) {
	t.Parallel()

	t.Run("ServiceRoleAndPolicies", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		u, err := sqlSignOne(t, db, asService, `select storage.url_sign(bucket_id => 'b', name => 'k', expires_in => 60)`)
		require.NoError(t, err)
		require.Regexp(t, signURLPattern, u)
		sqlSignRequireClaims(t, sqlSignVerify(t, signTokenOf(t, u), sqlSignSecret), 60, map[string]any{"url": "b/k", "scope": "download"})

		// Without a SELECT policy the object is not found, for anon and users alike.
		for _, id := range []proxy.Identity{asAnon, userA, userB} {
			_, err := sqlSignOne(t, db, id, sqlSignQ, "b", "k", 60)
			requireSQLState(t, err, "ST002", "Object not found")
		}
		admin(t, db, `create policy own on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text)`)
		u, err = sqlSignOne(t, db, userA, sqlSignQ, "b", "k", 3600)
		require.NoError(t, err)
		require.Regexp(t, signURLPattern, u)
		sqlSignRequireClaims(t, sqlSignVerify(t, signTokenOf(t, u), sqlSignSecret), 3600, map[string]any{"url": "b/k", "scope": "download"})
		_, err = sqlSignOne(t, db, userB, sqlSignQ, "b", "k", 60)
		requireSQLState(t, err, "ST002", "Object not found")
		_, err = sqlSignOne(t, db, asAnon, sqlSignQ, "b", "k", 60)
		requireSQLState(t, err, "ST002", "Object not found")
		// Positional arguments, and the owner without any prelude.
		var v string
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select storage.url_sign('b', 'other', 5)`).Scan(&v))
		sqlSignRequireClaims(t, sqlSignVerify(t, signTokenOf(t, v), sqlSignSecret), 5, map[string]any{"url": "b/other", "scope": "download"})
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		for _, id := range sqlSignRoles {
			_, err := sqlSignOne(t, db, id, sqlSignQ, "b", "missing", 60)
			requireSQLState(t, err, "ST002", "Object not found")
			_, err = sqlSignOne(t, db, id, sqlSignQ, "nobucket", "k", 60)
			requireSQLState(t, err, "ST002", "Object not found")
			_, err = sqlSignOne(t, db, id, sqlSignQ, "b", "a%b", 60)
			requireSQLState(t, err, "ST007", "Invalid key: a%b")
			_, err = sqlSignOne(t, db, id, sqlSignQ, "b", "", 60)
			requireSQLState(t, err, "ST007", "Invalid key: ")
		}
	})

	t.Run("InvalidBucketName", func(t *testing.T) {
		t.Parallel()
		// Like every other object function (storage.object_delete_many, url_sign_upload):
		// an invalid bucket id is ST006, whether or not such a row could exist.
		db := sqlSignDB(t)
		for _, bucket := range []string{"a{b}", "", "a/b"} {
			_, err := sqlSignOne(t, db, asService, sqlSignQ, bucket, "k", 60)
			requireSQLState(t, err, "ST006", "Bucket name invalid")
			_, err = sqlSignMany(t, db, asService, bucket, []string{"k"}, 60)
			requireSQLState(t, err, "ST006", "Bucket name invalid")
		}
	})

	t.Run("ExpiresIn", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		for _, e := range []any{0, -1, nil, int64(9007199254740), int64(1) << 62} {
			_, err := sqlSignOne(t, db, asService, sqlSignQ, "b", "k", e)
			requireSQLState(t, err, "ST012", "Invalid Parameter expiresIn")
			_, err = sqlSignMany(t, db, asService, "b", []string{"k"}, e)
			requireSQLState(t, err, "ST012", "Invalid Parameter expiresIn")
			_, _, err = sqlSignUpload(t, db, asService, `select url, token from storage.url_sign_upload(bucket_id => 'b', name => 'u', expires_in => $1)`, e)
			requireSQLState(t, err, "ST012", "Invalid Parameter expiresIn")
		}
		// The bound is exp ≤ 9007199254740 (JavaScript's safe milliseconds), at the
		// transaction's now().
		err := asRole(t, db, asService, false, func(tx pgx.Tx) error {
			var u string
			if err := tx.QueryRow(context.Background(), `select storage.url_sign('b', 'k', 9007199254740 - floor(extract(epoch from now()))::bigint)`).Scan(&u); err != nil {
				return err
			}
			_, claims := signDecode(t, signTokenOf(t, u))
			require.Equal(t, int64(9007199254740), signClaimInt(t, claims, "exp"))
			_, err := tx.Exec(context.Background(), `select storage.url_sign('b', 'k', 9007199254741 - floor(extract(epoch from now()))::bigint)`)
			return err
		})
		requireSQLState(t, err, "ST012", "Invalid Parameter expiresIn")
	})

	t.Run("NoSigningKey", func(t *testing.T) {
		t.Parallel()
		// A database no server has started on yet has no secret: nothing is signed.
		db := testdb.New(t)
		admin(t, db, `insert into storage.buckets (id, name) values ('b', 'b')`)
		sqlObjInsert(t, db, "b", "k", "", "v1")
		const msg = "No signing key: start the storage server once (it stores AUTH_JWT_SECRET) or call storage.signing_secret_set"
		_, err := sqlSignOne(t, db, asService, sqlSignQ, "b", "k", 60)
		requireSQLState(t, err, "ST010", msg)
		_, err = sqlSignMany(t, db, asService, "b", []string{"k"}, 60)
		requireSQLState(t, err, "ST010", msg)
		_, _, err = sqlSignUpload(t, db, asService, `select url, token from storage.url_sign_upload('b', 'u')`)
		requireSQLState(t, err, "ST010", msg)
	})

	t.Run("SecretRotation", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		var before time.Time
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select updated_at from storage.signing_key`).Scan(&before))
		// The same secret again changes nothing (storage serve calls it at every start).
		admin(t, db, `select storage.signing_secret_set($1)`, sqlSignSecret)
		var after time.Time
		var n int
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select updated_at, count(*) over () from storage.signing_key`).Scan(&after, &n))
		require.Equal(t, before, after)
		require.Equal(t, 1, n)
		// A new secret signs from then on.
		admin(t, db, `select storage.signing_secret_set('rotated-secret-of-at-least-32-bytes!!')`)
		u, err := sqlSignOne(t, db, asService, sqlSignQ, "b", "k", 60)
		require.NoError(t, err)
		sqlSignVerify(t, signTokenOf(t, u), "rotated-secret-of-at-least-32-bytes!!")
		_, err = jwt.Parse(signTokenOf(t, u), func(*jwt.Token) (any, error) { return []byte(sqlSignSecret), nil })
		require.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid)
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select updated_at, count(*) over () from storage.signing_key`).Scan(&after, &n))
		require.True(t, after.After(before) || after.Equal(before))
		require.Equal(t, 1, n)
	})
}

func TestSQLSignMany(t *testing.T) {
	t.Parallel()

	t.Run("OrderAndErrors", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		sqlObjInsert(t, db, "b", "dir/a b.txt", "", "v3")
		names := []string{"other", "nope", "k", "dir/a b.txt", "k", "a%b"}
		rows, err := sqlSignMany(t, db, asService, "b", names, 120)
		require.NoError(t, err)
		require.Len(t, rows, len(names))
		for i, name := range names {
			require.Equal(t, name, rows[i].Path, "row %d", i)
			if name == "nope" || name == "a%b" {
				require.Nil(t, rows[i].SignedURL, "row %d", i)
				require.NotNil(t, rows[i].Error, "row %d", i)
				require.Equal(t, signBatchMissing, *rows[i].Error)
				continue
			}
			require.Nil(t, rows[i].Error, "row %d", i)
			require.NotNil(t, rows[i].SignedURL, "row %d", i)
			u := *rows[i].SignedURL
			require.Equal(t, "/object/sign/b/"+signPathEscape(name)+"?token="+signTokenOf(t, u), u)
			sqlSignRequireClaims(t, sqlSignVerify(t, signTokenOf(t, u), sqlSignSecret), 120, map[string]any{"url": "b/" + name, "scope": "download"})
		}
		// No names, no rows; a missing bucket errs every row.
		rows, err = sqlSignMany(t, db, asService, "b", []string{}, 60)
		require.NoError(t, err)
		require.Empty(t, rows)
		rows, err = sqlSignMany(t, db, asService, "nobucket", []string{"k", "other"}, 60)
		require.NoError(t, err)
		require.Len(t, rows, 2)
		for i, r := range rows {
			require.Equal(t, []string{"k", "other"}[i], r.Path)
			require.Nil(t, r.SignedURL)
			require.Equal(t, signBatchMissing, *r.Error)
		}
	})

	t.Run("RLS", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		for _, id := range []proxy.Identity{asAnon, userA} {
			rows, err := sqlSignMany(t, db, id, "b", []string{"k", "other"}, 60)
			require.NoError(t, err)
			for _, r := range rows {
				require.Nil(t, r.SignedURL, "%s %s", id.Role, r.Path)
			}
		}
		admin(t, db, `create policy own on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text)`)
		rows, err := sqlSignMany(t, db, userA, "b", []string{"other", "k"}, 60)
		require.NoError(t, err)
		require.Equal(t, "other", rows[0].Path)
		require.Nil(t, rows[0].SignedURL)
		require.Equal(t, signBatchMissing, *rows[0].Error)
		require.Equal(t, "k", rows[1].Path)
		require.Nil(t, rows[1].Error)
		sqlSignRequireClaims(t, sqlSignVerify(t, signTokenOf(t, *rows[1].SignedURL), sqlSignSecret), 60, map[string]any{"url": "b/k", "scope": "download"})
	})
}

func TestSQLSignUpload(t *testing.T) {
	t.Parallel()
	const q = `select url, token from storage.url_sign_upload(bucket_id => $1, name => $2, upsert => $3)`

	t.Run("TokenClaims", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		admin(t, db, `create policy ins on storage.objects for insert to authenticated with check (bucket_id = 'b')`)
		url, tok, err := sqlSignUpload(t, db, userA, q, "b", "new/u.txt", false)
		require.NoError(t, err)
		require.Equal(t, "/object/upload/sign/b/new/u.txt?token="+tok, url)
		// Default lifetime 7200 s; owner = the caller's sub.
		// The signer (role and claims) is who the upload will be written as.
		signerA := map[string]any{"role": "authenticated", "claims": map[string]any{"role": "authenticated", "sub": userA.Sub}}
		signerService := map[string]any{"role": "service_role", "claims": map[string]any{"role": "service_role"}}
		sqlSignRequireClaims(t, sqlSignVerify(t, tok, sqlSignSecret), 7200,
			map[string]any{"url": "b/new/u.txt", "scope": "upload", "upsert": false, "owner": userA.Sub, "signer": signerA})
		// The service role has no sub: no owner claim. upsert and expires_in as given.
		_, tok, err = sqlSignUpload(t, db, asService, `select url, token from storage.url_sign_upload('b', 'k', true, 90)`)
		require.NoError(t, err)
		sqlSignRequireClaims(t, sqlSignVerify(t, tok, sqlSignSecret), 90, map[string]any{"url": "b/k", "scope": "upload", "upsert": true, "signer": signerService})
		// NULL upsert is false.
		_, tok, err = sqlSignUpload(t, db, asService, q, "b", "u", nil)
		require.NoError(t, err)
		sqlSignRequireClaims(t, sqlSignVerify(t, tok, sqlSignSecret), 7200, map[string]any{"url": "b/u", "scope": "upload", "upsert": false, "signer": signerService})
		// A SQL caller RLS does not apply to (here the tables' owner, with no request claims)
		// signs as service_role.
		var ownerTok string
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select token from storage.url_sign_upload('b', 'o', false, 60)`).Scan(&ownerTok))
		sqlSignRequireClaims(t, sqlSignVerify(t, ownerTok, sqlSignSecret), 60, map[string]any{"url": "b/o", "scope": "upload", "upsert": false,
			"signer": map[string]any{"role": "service_role"}})
		// A dry-run: nothing was written, even when committed.
		_, err = sqlObjQuery(t, db, asService, true, `select url from storage.url_sign_upload('b', 'committed')`)
		require.NoError(t, err)
		require.Equal(t, []string{"b/k", "b/other"}, sqlObjNames(t, db))
		require.Empty(t, sqlObjCol(t, db, `select version from storage.blob_uploads`))
	})

	t.Run("DryRunRefusals", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		for _, id := range sqlSignRoles {
			_, _, err := sqlSignUpload(t, db, id, q, "nobucket", "u", false)
			requireSQLState(t, err, "ST001", "Bucket not found")
			for _, bad := range []string{"a{b}", "", "a/b"} {
				_, _, err = sqlSignUpload(t, db, id, q, bad, "u", false)
				requireSQLState(t, err, "ST006", "Bucket name invalid")
			}
			for _, bad := range []string{"a%b", "", "caf\u00e9"} {
				_, _, err = sqlSignUpload(t, db, id, q, "b", bad, false)
				requireSQLState(t, err, "ST007", "Invalid key: "+bad)
			}
		}
		// Existing key without upsert: ST004 (the service role, whom RLS does not stop).
		_, _, err := sqlSignUpload(t, db, asService, q, "b", "k", false)
		requireSQLState(t, err, "ST004", "The resource already exists")
		_, _, err = sqlSignUpload(t, db, asService, q, "b", "k", true)
		require.NoError(t, err)
		// No INSERT policy: 42501 for anon and users.
		for _, id := range []proxy.Identity{asAnon, userA} {
			_, _, err = sqlSignUpload(t, db, id, q, "b", "u", false)
			requireSQLState(t, err, "42501", "")
		}
		admin(t, db, `create policy ins on storage.objects for insert to authenticated with check (owner_id = (select auth.uid())::text)`)
		_, _, err = sqlSignUpload(t, db, userA, q, "b", "u", false)
		require.NoError(t, err)
		_, _, err = sqlSignUpload(t, db, asAnon, q, "b", "u", false)
		requireSQLState(t, err, "42501", "")
		// Upsert needs UPDATE (and SELECT) too, once the key exists.
		admin(t, db, `create policy sel on storage.objects for select to authenticated using (true)`)
		_, _, err = sqlSignUpload(t, db, userA, q, "b", "k", true)
		requireSQLState(t, err, "42501", "")
		admin(t, db, `create policy upd on storage.objects for update to authenticated using (owner_id = (select auth.uid())::text)`)
		_, _, err = sqlSignUpload(t, db, userA, q, "b", "k", true)
		require.NoError(t, err)
		_, _, err = sqlSignUpload(t, db, userB, q, "b", "k", true)
		requireSQLState(t, err, "42501", "")
		_, _, err = sqlSignUpload(t, db, userA, q, "b", "k", false)
		requireSQLState(t, err, "ST004", "The resource already exists")
	})
}

// ---------------------------------------------------------------------------------------------
// Over HTTP: what SQL mints, the proxy honours.

func TestSQLSignOverHTTP(t *testing.T) {
	t.Parallel()
	o := &objEnv{setupHTTP(t)}
	o.mkBucket(t, `{"name":"b"}`)
	o.mkBucket(t, `{"name":"c"}`)
	o.mustUpload(t, "b", "k", "hello from b/k")
	o.mustUpload(t, "b", "folder/a b (1).png", "spaced")
	o.mustUpload(t, "b", "k2", "k2")
	o.mustUpload(t, "c", "k", "c/k")
	admin(t, o.db, `update storage.objects set owner_id = $1 where name = 'k' and bucket_id = 'b'`, userA.Sub)
	admin(t, o.db, `create policy own on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text)`)
	admin(t, o.db, `create policy ins on storage.objects for insert to authenticated with check (bucket_id = 'b')`)

	t.Run("Download", func(t *testing.T) {
		t.Parallel()
		for _, id := range []proxy.Identity{asService, userA} {
			u, err := sqlSignOne(t, o.db, id, `select storage.url_sign(bucket_id => 'b', name => 'k', expires_in => 60)`)
			require.NoError(t, err)
			r := o.fetch(t, u)
			requireBytes(t, r, "hello from b/k")
			_, claims := signDecode(t, signTokenOf(t, u))
			require.Equal(t, time.Unix(signClaimInt(t, claims, "exp"), 0).UTC().Format(http.TimeFormat), r.Header.Get("Expires"))
			// Refused on any other path.
			tok := signTokenOf(t, u)
			for _, p := range []string{"/object/sign/b/k2", "/object/sign/c/k", "/object/sign/b/K", "/object/sign/b/k/x"} {
				requireAPIError(t, o.get(t, p+"?token="+tok, ""), 400, errSignInvalid)
			}
			requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/k?token="+tok, "", strings.NewReader("x"), 1), 400, errSignNotUpload)
		}
		u, err := sqlSignOne(t, o.db, asService, `select storage.url_sign('b', 'folder/a b (1).png', 60)`)
		require.NoError(t, err)
		require.Equal(t, "/object/sign/b/folder/a%20b%20(1).png?token="+signTokenOf(t, u), u)
		requireBytes(t, o.fetch(t, u), "spaced")
	})

	t.Run("Many", func(t *testing.T) {
		t.Parallel()
		rows, err := sqlSignMany(t, o.db, userA, "b", []string{"k2", "k"}, 60)
		require.NoError(t, err)
		require.Nil(t, rows[0].SignedURL, "userA cannot see k2")
		requireBytes(t, o.fetch(t, *rows[1].SignedURL), "hello from b/k")
	})

	t.Run("Upload", func(t *testing.T) {
		t.Parallel()
		url, tok, err := sqlSignUpload(t, o.db, userA, `select url, token from storage.url_sign_upload(bucket_id => 'b', name => 'from sql.txt')`)
		require.NoError(t, err)
		requireAPIError(t, o.get(t, "/object/sign/b/from%20sql.txt?token="+tok, ""), 400, errSignNotDownload)
		requireOKBodyExact(t, o.putSigned(t, url, "uploaded"), `{"Key":"b/from sql.txt"}`)
		require.Equal(t, "uploaded", o.content(t, "b", "from sql.txt"))
		owner, ownerID := o.signOwner(t, "b", "from sql.txt")
		require.Equal(t, userA.Sub, owner)
		require.Equal(t, userA.Sub, ownerID)
		requireAPIError(t, o.putSigned(t, url, "again"), 400, errKeyExists)
	})
}

// ---------------------------------------------------------------------------------------------
// The fence around the secret.

func TestSQLSignSecurity(t *testing.T) {
	t.Parallel()

	t.Run("SigningKeyTable", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		for _, id := range sqlSignRoles {
			for _, q := range []string{
				`select * from storage.signing_key`,
				`select secret from storage.signing_key`,
				`select count(*) from storage.signing_key`,
				`update storage.signing_key set secret = 'mine'`,
				`insert into storage.signing_key (id, secret) values (2, 'mine')`,
				`delete from storage.signing_key`,
				`truncate storage.signing_key`,
			} {
				err := exec(t, db, id, q)
				requireSQLState(t, err, "42501", "permission denied for table signing_key")
			}
		}
		// Nothing changed.
		require.Equal(t, []string{sqlSignSecret}, sqlObjCol(t, db, `select convert_from(secret, 'UTF8') from storage.signing_key`))
	})

	t.Run("SigningSecretSet", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		for _, id := range sqlSignRoles {
			err := exec(t, db, id, `select storage.signing_secret_set('mine-of-at-least-32-bytes-long-secret')`)
			requireSQLState(t, err, "42501", "permission denied for function signing_secret_set")
		}
		require.Equal(t, []string{sqlSignSecret}, sqlObjCol(t, db, `select convert_from(secret, 'UTF8') from storage.signing_key`))
	})

	t.Run("URLTokenDirect", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		const msg = "storage_internal.url_token may only be called by the storage.url_sign functions"
		for _, id := range sqlSignRoles {
			for _, q := range []string{
				`select storage_internal.url_token('{"url":"b/k","scope":"download"}')`,
				`select storage_internal.url_token(jsonb_build_object('url', 'b/k', 'scope', 'upload', 'upsert', true))`,
				`select * from storage_internal.url_token('{"url":"b/k","scope":"download"}')`,
				`do $$ begin perform storage_internal.url_token('{"url":"b/k","scope":"download"}'); end $$`,
			} {
				err := exec(t, db, id, q)
				requireSQLState(t, err, "42501", msg)
			}
		}
		// Even the owner may not call it directly.
		_, err := db.Pool.Exec(context.Background(), `select storage_internal.url_token('{"url":"b/k"}')`)
		requireSQLState(t, err, "42501", msg)
	})

	t.Run("URLTokenFromOtherFunctions", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		const msg = "storage_internal.url_token may only be called by the storage.url_sign functions"
		const body = `begin return storage_internal.url_token(jsonb_build_object('url', bucket_id || '/' || name, 'scope', 'download')); end`
		// Functions named like the real ones, in other schemas, plain and SECURITY DEFINER
		// (created by the owner of the storage schema, even), one whose quoted name tries to
		// forge a line of the call stack, and an SQL-language one.
		admin(t, db, `create function public.url_sign(bucket_id text, name text, expires_in bigint) returns text language plpgsql as $$`+body+`$$`)
		admin(t, db, `create function public.url_sign_many(bucket_id text, name text, expires_in bigint) returns text language plpgsql security definer as $$`+body+`$$`)
		admin(t, db, `create schema storage_x`)
		admin(t, db, `create function storage_x.url_sign_upload(bucket_id text, name text, expires_in bigint) returns text language plpgsql as $$`+body+`$$`)
		admin(t, db, "create function public.\"x\nPL/pgSQL function storage.url_sign(\"(bucket_id text, name text, expires_in bigint) returns text language plpgsql as $$"+body+"$$")
		admin(t, db, `create function public.url_sign_sql(bucket_id text, name text, expires_in bigint) returns text language sql as $$ select storage_internal.url_token(jsonb_build_object('url', bucket_id || '/' || name, 'scope', 'download')) $$`)
		admin(t, db, `grant usage on schema storage_x to anon, authenticated, service_role`)
		admin(t, db, `grant execute on all functions in schema public, storage_x to anon, authenticated, service_role`)
		calls := []string{
			`select public.url_sign('b', 'k', 60)`,
			`select public.url_sign_many('b', 'k', 60)`,
			`select storage_x.url_sign_upload('b', 'k', 60)`,
			"select public.\"x\nPL/pgSQL function storage.url_sign(\"('b', 'k', 60)",
			`select public.url_sign_sql('b', 'k', 60)`,
		}
		for _, id := range sqlSignRoles {
			for _, q := range calls {
				_, err := sqlObjQuery(t, db, id, false, q)
				requireSQLState(t, err, "42501", msg)
			}
			// Ahead of storage on the search_path, called unqualified.
			err := asRole(t, db, id, false, func(tx pgx.Tx) error {
				if _, err := tx.Exec(context.Background(), `set local search_path = public, storage`); err != nil {
					return err
				}
				_, err := tx.Exec(context.Background(), `select url_sign('b', 'k', 60::bigint)`)
				return err
			})
			requireSQLState(t, err, "42501", msg)
		}
		for _, q := range calls {
			_, err := db.Pool.Exec(context.Background(), q)
			requireSQLState(t, err, "42501", msg)
		}
	})

	t.Run("URLTokenFromTemporaryFunction", func(t *testing.T) {
		t.Parallel()
		db := sqlSignDB(t)
		for _, id := range sqlSignRoles {
			err := asRole(t, db, id, false, func(tx pgx.Tx) error {
				ctx := context.Background()
				if _, err := tx.Exec(ctx, `create function pg_temp.url_sign(bucket_id text, name text, expires_in bigint) returns text
					language plpgsql as $$ begin return storage_internal.url_token(jsonb_build_object('url', bucket_id || '/' || name, 'scope', 'download')); end $$`); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `select pg_temp.url_sign('b', 'k', 60)`)
				return err
			})
			requireSQLState(t, err, "42501", "storage_internal.url_token may only be called by the storage.url_sign functions")
		}
	})

	t.Run("NoFunctionsInStorage", func(t *testing.T) {
		t.Parallel()
		// Request roles cannot put a function into the storage schema, nor replace one.
		db := sqlSignDB(t)
		for _, id := range sqlSignRoles {
			err := exec(t, db, id, `create function storage.url_sign_x() returns text language plpgsql as $$ begin return storage_internal.url_token('{}'); end $$`)
			requireSQLState(t, err, "42501", "permission denied for schema storage")
			err = exec(t, db, id, `create or replace function storage.url_sign(bucket_id text, name text, expires_in bigint) returns text
				language plpgsql as $$ begin return storage_internal.url_token(jsonb_build_object('url', bucket_id || '/' || name, 'scope', 'download')); end $$`)
			requireSQLState(t, err, "42501", "")
			err = exec(t, db, id, `alter function storage_internal.url_token(jsonb) security invoker`)
			requireSQLState(t, err, "42501", "must be owner of function storage_internal.url_token")
		}
	})

	t.Run("RealCallersStillSign", func(t *testing.T) {
		t.Parallel()
		// After all of the above the genuine functions sign, under any search_path.
		db := sqlSignDB(t)
		for _, path := range []string{"public", "storage, public", "pg_temp, storage", "''"} {
			for _, call := range []string{
				`select storage.url_sign('b', 'k', 60)`,
				`select signed_url from storage.url_sign_many('b', array['k'], 60)`,
				`select token from storage.url_sign_upload('b', 'new')`,
			} {
				var u string
				err := asRole(t, db, asService, false, func(tx pgx.Tx) error {
					if _, err := tx.Exec(context.Background(), `set local search_path = `+path); err != nil {
						return err
					}
					return tx.QueryRow(context.Background(), call).Scan(&u)
				})
				require.NoError(t, err, "search_path %s: %s", path, call)
				if strings.Contains(u, "?token=") {
					u = signTokenOf(t, u)
				}
				sqlSignVerify(t, u, sqlSignSecret)
			}
		}
		// Unqualified, found through the search_path.
		err := asRole(t, db, asService, false, func(tx pgx.Tx) error {
			if _, err := tx.Exec(context.Background(), `set local search_path = storage`); err != nil {
				return err
			}
			var u string
			if err := tx.QueryRow(context.Background(), `select url_sign('b', 'k', 60::bigint)`).Scan(&u); err != nil {
				return err
			}
			sqlSignVerify(t, signTokenOf(t, u), sqlSignSecret)
			return nil
		})
		require.NoError(t, err)
	})
}

// ---------------------------------------------------------------------------------------------
// The crypto under the tokens.

func TestSQLSignHMAC(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()

	key := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*31 + 7)
		}
		return b
	}
	long := make([]byte, 1000)
	for i := range long {
		long[i] = byte(255 - i%256)
	}
	messages := [][]byte{{}, []byte("abc"), []byte("The quick brown fox jumps over the lazy dog"), long, {0, 0x36, 0x5c, 0xff}}
	for _, n := range []int{0, 1, 10, 32, 63, 64, 65, 100, 200} {
		for i, m := range messages {
			mac := hmac.New(sha256.New, key(n))
			mac.Write(m)
			var got []byte
			require.NoError(t, db.Pool.QueryRow(ctx, `select storage_internal.hmac_sha256($1::bytea, $2::bytea)`, key(n), m).Scan(&got))
			require.Equal(t, mac.Sum(nil), got, "key of %d bytes, message %d", n, i)
		}
	}
	// RFC 4231 test case 2.
	var got []byte
	require.NoError(t, db.Pool.QueryRow(ctx, `select storage_internal.hmac_sha256(convert_to('Jefe', 'UTF8'), convert_to('what do ya want for nothing?', 'UTF8'))`).Scan(&got))
	require.Equal(t, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", fmt.Sprintf("%x", got))

	// The request roles may use it as well (it is a plain function).
	for _, id := range sqlSignRoles {
		out, err := queryStrings(t, db, id, `select encode(storage_internal.hmac_sha256('\x6b6579'::bytea, '\x6d7367'::bytea), 'hex')`)
		require.NoError(t, err)
		mac := hmac.New(sha256.New, []byte("key"))
		mac.Write([]byte("msg"))
		require.Equal(t, []string{fmt.Sprintf("%x", mac.Sum(nil))}, out)
	}

	// base64url: unpadded, URL alphabet, no line breaks whatever the length.
	for n := 0; n <= 200; n++ {
		data := key(n)
		var s string
		require.NoError(t, db.Pool.QueryRow(ctx, `select storage_internal.base64url($1::bytea)`, data).Scan(&s))
		require.Equal(t, base64.RawURLEncoding.EncodeToString(data), s, "%d bytes", n)
	}
}

// TestSQLSignTokenBytes pins the tokens' bytes: for a given key, key id and claims, the token
// is the string signed URLs have always carried — header and claims as PostgreSQL's jsonb text
// renders them, HMAC-SHA-256 over both — so URLs signed by an older server and by this one are
// interchangeable. Keys shorter and longer than the HMAC block (hashed first), with and
// without a key id, and after each rotation (the pads and header kept with the key follow it).
func TestSQLSignTokenBytes(t *testing.T) {
	t.Parallel()
	db := sqlSignDB(t)
	b64 := base64.RawURLEncoding.EncodeToString
	for _, c := range []struct {
		secret, kid, header string
	}{
		{sqlSignSecret, "", `{"alg":"HS256","typ":"JWT"}`},
		{"k", "", `{"alg":"HS256","typ":"JWT"}`},
		{strings.Repeat("long secret, ", 10), "key-1", `{"alg": "HS256", "kid": "key-1", "typ": "JWT"}`},
		{sqlSignSecret, `k"2`, `{"alg": "HS256", "kid": "k\"2", "typ": "JWT"}`},
	} {
		var kid any
		if c.kid != "" {
			kid = c.kid
		}
		admin(t, db, `select storage.signing_secret_set(convert_to($1, 'UTF8'), $2)`, c.secret, kid)
		url, err := sqlSignOne(t, db, asService, sqlSignQ, "b", "k", 60)
		require.NoError(t, err)
		prefix, token, ok := strings.Cut(url, "?token=")
		require.True(t, ok, url)
		require.Equal(t, "/object/sign/b/k", prefix)
		_, claims := signDecode(t, token)
		iat := signClaimInt(t, claims, "iat")
		input := b64([]byte(c.header)) + "." +
			b64([]byte(fmt.Sprintf(`{"exp": %d, "iat": %d, "url": "b/k", "scope": "download"}`, iat+60, iat)))
		mac := hmac.New(sha256.New, []byte(c.secret))
		mac.Write([]byte(input))
		require.Equal(t, input+"."+b64(mac.Sum(nil)), token, "secret %q, kid %q", c.secret, c.kid)
	}
}
