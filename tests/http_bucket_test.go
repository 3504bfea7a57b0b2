package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/tests/testdb"
)

// The bucket routes, health routes, authentication and error model over real HTTP against the
// real proxy and a real database, pinned to the behavioural contract
// (/work/shared/spec/API.md §1.1–1.3, §2.1–2.2, §3.1–3.3, §6.1 and §11 items 1–25):
// exact HTTP statuses, exact JSON bodies, and the rows left in storage.buckets.

// ---------------------------------------------------------------------------------------------
// Helpers of this file.

// decodeJSON decodes a body keeping numbers exact (json.Number).
func decodeJSON(t *testing.T, body []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	require.NoError(t, d.Decode(&v), "body: %s", body)
	return v
}

// okJSON asserts a 200 JSON response and decodes it with exact numbers.
func okJSON(t *testing.T, r httpResponse) any {
	t.Helper()
	requireOKJSON(t, r)
	return decodeJSON(t, r.Body)
}

// requireOKBody asserts a 200 JSON response whose body is exactly want (as JSON).
func requireOKBody(t *testing.T, r httpResponse, want string) {
	t.Helper()
	requireOKJSON(t, r)
	require.JSONEq(t, want, string(r.Body))
}

// createBucket creates a bucket over HTTP with the service key and asserts the reply.
func (b *httpBundle) createBucket(t *testing.T, body string) {
	t.Helper()
	var p struct {
		Name string `json:"name"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &p))
	r := b.do(t, "POST", "/bucket", b.service, body)
	requireOKBody(t, r, `{"name":`+jsonString(p.Name)+`}`)
}

// getBucket reads a bucket over HTTP with the service key.
func (b *httpBundle) getBucket(t *testing.T, id string) map[string]any {
	t.Helper()
	v := okJSON(t, b.do(t, "GET", "/bucket/"+percentEncodeAll(id), b.service, ""))
	m, ok := v.(map[string]any)
	require.True(t, ok, "want an object, got %T", v)
	return m
}

// listBuckets lists buckets over HTTP with token and returns the items.
func (b *httpBundle) listBuckets(t *testing.T, query, token string, opts ...reqOpt) []map[string]any {
	t.Helper()
	v := okJSON(t, b.do(t, "GET", "/bucket"+query, token, "", opts...))
	arr, ok := v.([]any)
	require.True(t, ok, "want an array, got %T", v)
	out := make([]map[string]any, len(arr))
	for i, e := range arr {
		out[i], ok = e.(map[string]any)
		require.True(t, ok, "item %d: want an object, got %T", i, e)
	}
	return out
}

func names(items []map[string]any) []string {
	out := make([]string, len(items))
	for i, m := range items {
		out[i], _ = m["name"].(string)
	}
	return out
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// bucketWant is a bucket as the API must render it, timestamps aside.
type bucketWant struct {
	id, name, owner  string
	public           bool
	fileSizeLimit    any // nil or json.Number
	allowedMimeTypes any // nil or []any
	withType         bool
}

// requireBucket asserts a rendered bucket: the exact key set (type only on list), every field,
// and JavaScript-style timestamps (spec §1.3, §11 item 21).
func requireBucket(t *testing.T, got map[string]any, w bucketWant) {
	t.Helper()
	keys := []string{"allowed_mime_types", "created_at", "file_size_limit", "id", "name", "owner", "public", "updated_at"}
	if w.withType {
		keys = append(keys, "type")
	}
	require.ElementsMatch(t, keys, sortedKeys(got), "bucket %v", got)
	require.Equal(t, w.id, got["id"], "id")
	require.Equal(t, w.name, got["name"], "name")
	require.Equal(t, w.owner, got["owner"], "owner")
	require.Equal(t, w.public, got["public"], "public")
	require.Equal(t, w.fileSizeLimit, got["file_size_limit"], "file_size_limit")
	require.Equal(t, w.allowedMimeTypes, got["allowed_mime_types"], "allowed_mime_types")
	if w.withType {
		require.Equal(t, "STANDARD", got["type"])
	}
	for _, k := range []string{"created_at", "updated_at"} {
		s, ok := got[k].(string)
		require.True(t, ok, "%s: %v", k, got[k])
		require.Regexp(t, jsTimestamp, s, k)
	}
}

func mustStoredBucket(t *testing.T, db *testdb.DB, id string) storedBucket {
	t.Helper()
	b, ok := loadStoredBucket(t, db, id)
	require.True(t, ok, "bucket %q is not in storage.buckets", id)
	return b
}

func requireNoStoredBucket(t *testing.T, db *testdb.DB, id string) {
	t.Helper()
	_, ok := loadStoredBucket(t, db, id)
	require.False(t, ok, "bucket %q is in storage.buckets", id)
}

// ownerSQL runs a statement as the tables' owner (policies, fixtures that bypass the API).
func ownerSQL(t *testing.T, db *testdb.DB, sql string, args ...any) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

// putObjectRow puts an object row into a bucket as the tables' owner.
func putObjectRow(t *testing.T, db *testdb.DB, bucket, name string) {
	t.Helper()
	ownerSQL(t, db, `insert into storage.objects (bucket_id, name) values ($1, $2)`, bucket, name)
}

func objectCount(t *testing.T, db *testdb.DB, bucket string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`select count(*) from storage.objects where bucket_id = $1`, bucket).Scan(&n))
	return n
}

func ptr[T any](v T) *T { return &v }

const (
	msgUpdated = `{"message":"Successfully updated"}`
	msgDeleted = `{"message":"Successfully deleted"}`
	msgEmptied = `{"message":"Empty bucket has been queued. Completion may take up to an hour."}`
)

// ---------------------------------------------------------------------------------------------
// Spec §11 items 1–25, one subtest each, worded as in the spec.

func TestHTTPSpecItems(t *testing.T) {
	t.Parallel()

	// setup starts a server whose database holds the private bucket b, as §11 assumes.
	setup := func(t *testing.T) *httpBundle {
		t.Helper()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b"}`)
		return b
	}

	t.Run("01_StatusAndVersion", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := b.do(t, "GET", "/status", "", "")
		require.Equal(t, 200, r.Status)
		require.Empty(t, r.Body)
		r = b.do(t, "GET", "/version", "", "")
		require.Equal(t, 200, r.Status)
		require.Equal(t, "text/plain; charset=utf-8", r.Header.Get("Content-Type"))
		require.Equal(t, httpVersion, string(r.Body))
	})

	t.Run("02_NoAuthorizationIsASchemaError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "GET", "/bucket", "", ""), 400, errNoAuthHeader)
	})

	t.Run("03_MalformedJWT", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "GET", "/bucket", "not-a-jwt", ""), 400,
			apiError{"403", "AccessDenied", "Unauthorized", "Invalid Compact JWS"})
	})

	t.Run("04_ExpiredJWT", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tok := mintJWT(t, "service_role", withExp(time.Now().Add(-time.Hour)))
		requireAPIError(t, b.do(t, "GET", "/bucket", tok, ""), 400,
			apiError{"403", "AccessDenied", "Unauthorized", `"exp" claim timestamp check failed`})
	})

	t.Run("05_BareTokenAccepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		items := b.listBuckets(t, "", "", withHeader("Authorization", b.service))
		require.Equal(t, []string{"b"}, names(items))
	})

	t.Run("06_ApikeyAloneDoesNotAuthenticate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "GET", "/bucket", "", "", withHeader("apikey", b.service)), 400, errNoAuthHeader)
	})

	t.Run("07_EveryErrorHasExactlyFourFields", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		putObjectRow(t, b.db, "b", "k")
		userTok := mintJWT(t, "authenticated", withSub(userA.Sub))
		rs := []httpResponse{
			b.do(t, "GET", "/bucket", "", ""),
			b.do(t, "GET", "/bucket", "not-a-jwt", ""),
			b.do(t, "GET", "/bucket/missing", b.service, ""),
			b.do(t, "GET", "/bucket?limit=0", b.service, ""),
			b.do(t, "POST", "/bucket", b.service, `{"name":"b"}`),
			b.do(t, "POST", "/bucket", b.service, `{"name":"a/b"}`),
			b.do(t, "POST", "/bucket", b.service, `{}`),
			b.do(t, "POST", "/bucket", b.anon, `{"name":"x"}`),
			b.do(t, "POST", "/bucket", b.service, `{"name":"x","allowed_mime_types":["bad"]}`),
			b.do(t, "POST", "/bucket", b.service, `{"name":"x","file_size_limit":"1GB"}`),
			b.do(t, "POST", "/bucket", b.service, `{"name":"x"}`, withHeader("Content-Type", "thisisnotarealmimetype")),
			b.do(t, "PUT", "/bucket/b", b.service, `{}`),
			b.do(t, "DELETE", "/bucket/b", b.service, ""),
			b.do(t, "POST", "/bucket/b/empty", userTok, ""),
			b.do(t, "GET", "/object/does-not-route", "", ""),
			b.do(t, "PATCH", "/bucket", b.service, ""),
		}
		for _, r := range rs {
			require.GreaterOrEqual(t, r.Status, 400, "%s", r)
			requireErrorShape(t, r)
		}
	})

	t.Run("08_EmptyRequiresServiceRole", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "POST", "/bucket/b/empty", b.userA, ""), 403,
			apiError{"403", "AccessDenied", "Unauthorized", "Access denied: Invalid role"})
	})

	t.Run("09_UnknownRouteIs404", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "GET", "/object/does-not-route", "", ""), 404,
			apiError{"404", "InvalidRequest", "Not Found", "Route GET:/object/does-not-route not found"})
	})

	// Item 10 (list-v2 without Authorization) belongs to the listing routes and is tested there.

	t.Run("11_CreateAndGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireOKBody(t, b.do(t, "POST", "/bucket", b.service, `{"name":"nb"}`), `{"name":"nb"}`)
		requireBucket(t, b.getBucket(t, "nb"), bucketWant{id: "nb", name: "nb", owner: ""})
	})

	t.Run("12_DuplicateName", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "POST", "/bucket", b.service, `{"name":"b"}`), 400,
			apiError{"409", "BucketAlreadyExists", "Duplicate", "The resource already exists"})
	})

	t.Run("13_InvalidNames", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, name := range []string{"a/b", " lead", strings.Repeat("n", 101), "x--table-s3"} {
			requireAPIError(t, b.do(t, "POST", "/bucket", b.service, `{"name":`+jsonString(name)+`}`), 400, errBadName)
			requireNoStoredBucket(t, b.db, name)
		}
	})

	t.Run("14_FileSizeLimitStrings", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createBucket(t, `{"name":"fs","file_size_limit":"1024KB"}`)
		b.createBucket(t, `{"name":"fs2","file_size_limit":"1MB"}`)
		require.Equal(t, json.Number("1020000"), b.getBucket(t, "fs")["file_size_limit"])
		require.Equal(t, json.Number("1000000"), b.getBucket(t, "fs2")["file_size_limit"])
		require.Equal(t, ptr(int64(1020000)), mustStoredBucket(t, b.db, "fs").FileSizeLimit)
	})

	t.Run("15_FileSizeLimitRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, v := range []string{`"1 MB"`, `-1`} {
			r := b.do(t, "POST", "/bucket", b.service, `{"name":"fs","file_size_limit":`+v+`}`)
			requireAPIErrorCode(t, r, 400, "400", "InvalidRequest")
			requireNoStoredBucket(t, b.db, "fs")
		}
	})

	t.Run("16_AllowedMimeTypes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "POST", "/bucket", b.service, `{"name":"m","allowed_mime_types":["notamime"]}`), 400,
			apiError{"415", "InvalidMimeType", "invalid_mime_type", "mime type notamime is not supported"})
		b.createBucket(t, `{"name":"m","allowed_mime_types":["image/*"]}`)
		require.Equal(t, []any{"image/*"}, b.getBucket(t, "m")["allowed_mime_types"])
	})

	t.Run("17_AnonWithoutPolicies", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireOKBody(t, b.do(t, "GET", "/bucket", b.anon, ""), `[]`)
		requireAPIError(t, b.do(t, "GET", "/bucket/b", b.anon, ""), 400, errNoSuchBucket)
	})

	t.Run("18_ListParameterBounds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "GET", "/bucket?limit=0", b.service, ""), 400,
			apiError{"400", "InvalidRequest", "Error", "querystring/limit must be >= 1"})
		requireAPIError(t, b.do(t, "GET", "/bucket?offset=-1", b.service, ""), 400,
			apiError{"400", "InvalidRequest", "Error", "querystring/offset must be >= 0"})
		requireOKBody(t, b.do(t, "GET", "/bucket?search=%25", b.service, ""), `[]`)
	})

	t.Run("19_ListTypeAndLegacyPython", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		items := b.listBuckets(t, "", b.service)
		require.Len(t, items, 1)
		require.Equal(t, "STANDARD", items[0]["type"])
		items = b.listBuckets(t, "", b.service, withHeader("User-Agent", "supabase-py/storage3 v0.12.0"))
		require.Len(t, items, 1)
		require.NotContains(t, items[0], "type")
	})

	t.Run("20_ServiceKeyOwnerIsEmptyString", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		items := b.listBuckets(t, "", b.service)
		require.Len(t, items, 1)
		require.Equal(t, "", items[0]["owner"])
		require.Nil(t, mustStoredBucket(t, b.db, "b").Owner)
	})

	t.Run("21_Timestamps", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got := b.getBucket(t, "b")
		listed := b.listBuckets(t, "", b.service)[0]
		stored := mustStoredBucket(t, b.db, "b")
		for k, want := range map[string]time.Time{"created_at": stored.CreatedAt, "updated_at": stored.UpdatedAt} {
			for _, m := range []map[string]any{got, listed} {
				s, _ := m[k].(string)
				require.Regexp(t, jsTimestamp, s, k)
				ts, err := time.Parse(time.RFC3339Nano, s)
				require.NoError(t, err)
				require.Equal(t, want.UTC().Truncate(time.Millisecond), ts, k)
			}
		}
	})

	t.Run("22_Update", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIErrorCode(t, b.do(t, "PUT", "/bucket/b", b.service, `{}`), 400, "400", "InvalidRequest")
		requireAPIError(t, b.do(t, "PUT", "/bucket/missing", b.service, `{"public":true}`), 400, errNoSuchBucket)
		requireOKBody(t, b.do(t, "PUT", "/bucket/b", b.service, `{"public":true}`), msgUpdated)
		require.True(t, mustStoredBucket(t, b.db, "b").Public)
	})

	t.Run("23_DeleteNotEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		putObjectRow(t, b.db, "b", "k")
		requireAPIError(t, b.do(t, "DELETE", "/bucket/b", b.service, ""), 400,
			apiError{"409", "ResourceNotEmpty", "ResourceNotEmpty", "The bucket you tried to delete is not empty"})
		mustStoredBucket(t, b.db, "b")
	})

	t.Run("24_DeleteEmptyJSONBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ct := withHeader("Content-Type", "application/json")
		requireOKBody(t, b.do(t, "DELETE", "/bucket/b", b.service, "", ct), msgDeleted)
		requireNoStoredBucket(t, b.db, "b")
		requireAPIError(t, b.do(t, "DELETE", "/bucket/b", b.service, "", ct), 400, errNoSuchBucket)
	})

	t.Run("25_Empty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireOKBody(t, b.do(t, "POST", "/bucket/b/empty", b.service, ""), msgEmptied)
		requireAPIError(t, b.do(t, "POST", "/bucket/missing/empty", b.service, ""), 400, errNoSuchBucket)
	})
}

// ---------------------------------------------------------------------------------------------
// Health, routing and request parsing.

func TestHTTPHealth(t *testing.T) {
	t.Parallel()

	t.Run("HealthWithoutAuthorization", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "GET", "/health", "", ""), 400, errNoAuthHeader)
	})

	t.Run("HealthWithInvalidJWT", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "GET", "/health", "not-a-jwt", ""), 400,
			apiError{"403", "AccessDenied", "Unauthorized", "Invalid Compact JWS"})
	})

	t.Run("HealthWithValidJWT", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, tok := range []string{b.service, b.anon, b.userA} {
			requireOKBody(t, b.do(t, "GET", "/health", tok, ""), `{"healthy":true}`)
		}
	})
}

func TestHTTPRouting(t *testing.T) {
	t.Parallel()

	t.Run("UnknownRoutes", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, tc := range []struct{ method, path, token string }{
			{"GET", "/object/does-not-route", ""},
			{"GET", "/object/does-not-route", b.service},
			{"GET", "/nope", ""},
			{"PATCH", "/bucket", b.service},
			{"DELETE", "/bucket", b.service},
			{"GET", "/bucket/b/empty", b.service},
		} {
			r := b.do(t, tc.method, tc.path, tc.token, "")
			requireAPIError(t, r, 404, apiError{"404", "InvalidRequest", "Not Found",
				"Route " + tc.method + ":" + tc.path + " not found"})
		}
	})

	t.Run("UnknownRouteKeepsQueryInMessage", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "GET", "/nope?a=1", "", ""), 404,
			apiError{"404", "InvalidRequest", "Not Found", "Route GET:/nope?a=1 not found"})
	})

	t.Run("UnparsableContentType", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		want := apiError{"415", "InvalidMimeType", "invalid_mime_type", "Invalid Content-Type header"}
		for _, ct := range []string{"thisisnotarealmimetype", "text/pl\tain"} {
			r := b.do(t, "POST", "/bucket", b.service, `{"name":"ct"}`, withHeader("Content-Type", ct))
			requireAPIError(t, r, 400, want)
		}
		requireNoStoredBucket(t, b.db, "ct")
		// Checked before authentication, as the reference's content-type parser runs first.
		requireAPIError(t, b.do(t, "POST", "/bucket", "", `{"name":"ct"}`, withHeader("Content-Type", "thisisnotarealmimetype")), 400, want)
	})

	t.Run("EmptyJSONBody", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		r := b.do(t, "POST", "/bucket", b.service, "", withHeader("Content-Type", "application/json"))
		e := requireAPIErrorCode(t, r, 400, "400", "InvalidRequest")
		require.Equal(t, "Body cannot be empty when content-type is set to 'application/json'", e.Message)
	})

	t.Run("MissingName", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "POST", "/bucket", b.service, `{"public":true}`), 400,
			apiError{"400", "InvalidRequest", "Error", "body must have required property 'name'"})
	})

	t.Run("BodyNotJSONObject", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, body := range []string{`{"name":`, `[{"name":"x"}]`, `"x"`} {
			requireAPIErrorCode(t, b.do(t, "POST", "/bucket", b.service, body), 400, "400", "InvalidRequest")
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Authentication (spec §3.1–3.3).

func TestHTTPAuth(t *testing.T) {
	t.Parallel()

	denied := func(msg string) apiError { return apiError{"403", "AccessDenied", "Unauthorized", msg} }

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, tok := range []string{"not-a-jwt", "a.b.c", "a.b"} {
			requireAPIError(t, b.do(t, "GET", "/bucket", tok, ""), 400, denied("Invalid Compact JWS"))
		}
	})

	t.Run("NotYetValid", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		tok := mintJWT(t, "service_role", withClaim("nbf", time.Now().Add(time.Hour).Unix()))
		requireAPIError(t, b.do(t, "GET", "/bucket", tok, ""), 400, denied(`"nbf" claim timestamp check failed`))
	})

	t.Run("OtherSecret", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		tok := signJWT(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), jwt.MapClaims{"role": "service_role"})
		requireAPIError(t, b.do(t, "GET", "/bucket", tok, ""), 400, denied("signature verification failed"))
	})

	t.Run("AlgNone", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		tok := signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"role": "service_role"})
		e := requireAPIErrorCode(t, b.do(t, "GET", "/bucket", tok, ""), 400, "403", "AccessDenied")
		require.Equal(t, "Unauthorized", e.Error)
	})

	t.Run("HS512WhenServerExpectsHS256", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		tok := signJWT(t, jwt.SigningMethodHS512, []byte(httpJWTSecret), jwt.MapClaims{"role": "service_role"})
		e := requireAPIErrorCode(t, b.do(t, "GET", "/bucket", tok, ""), 400, "403", "AccessDenied")
		require.Equal(t, "Unauthorized", e.Error)
	})

	t.Run("NoExpIsAccepted", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		tok := signJWT(t, jwt.SigningMethodHS256, []byte(httpJWTSecret), jwt.MapClaims{"role": "service_role"})
		requireOKBody(t, b.do(t, "GET", "/bucket", tok, ""), `[]`)
	})

	t.Run("LowercaseBearerSeveralSpaces", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b"}`)
		require.Equal(t, []string{"b"}, names(b.listBuckets(t, "", "", withHeader("Authorization", "bearer   "+b.service))))
		require.Equal(t, []string{"b"}, names(b.listBuckets(t, "", "", withHeader("Authorization", "BEARER "+b.service))))
	})

	t.Run("ApikeyAlone", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "GET", "/bucket", "", "", withHeader("apikey", b.service)), 400, errNoAuthHeader)
		requireAPIError(t, b.do(t, "POST", "/bucket", "", `{"name":"x"}`, withHeader("apikey", b.service)), 400, errNoAuthHeader)
		requireNoStoredBucket(t, b.db, "x")
	})

	t.Run("MissingRoleIsAnon", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b"}`)
		tok := mintJWT(t, "", withSub(userA.Sub))
		// service_role would see b; anon (the default role) sees nothing without policies.
		requireOKBody(t, b.do(t, "GET", "/bucket", tok, ""), `[]`)
		requireAPIError(t, b.do(t, "POST", "/bucket", tok, `{"name":"x"}`), 400, errRLSInsert)
	})

	t.Run("UnknownRoleIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		// Only allowed roles reach SET ROLE: a role that does not exist is refused with an
		// explicit 403, where the reference answers a 500 DatabaseError (spec §10 item 9).
		requireAPIError(t, b.do(t, "GET", "/bucket", mintJWT(t, "nosuchrole"), ""), 403,
			apiError{"403", "AccessDenied", "Unauthorized", `Access denied: role "nosuchrole" is not allowed`})
	})

	t.Run("RoleComesFromTheToken", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b"}`)
		// The apikey header carries a service key but is ignored: the anon JWT decides.
		requireOKBody(t, b.do(t, "GET", "/bucket", b.anon, "", withHeader("apikey", b.service)), `[]`)
	})
}

// ---------------------------------------------------------------------------------------------
// POST /bucket.

func TestHTTPBucketCreate(t *testing.T) {
	t.Parallel()

	t.Run("StoredColumnsServiceKey", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"cols","public":true,"file_size_limit":"1MB","allowed_mime_types":["image/png","text/*"]}`)
		got := mustStoredBucket(t, b.db, "cols")
		require.Equal(t, "cols", got.ID)
		require.Equal(t, "cols", got.Name)
		require.Nil(t, got.Owner)
		require.Nil(t, got.OwnerID)
		require.True(t, got.Public)
		require.Equal(t, ptr(int64(1000000)), got.FileSizeLimit)
		require.Equal(t, []string{"image/png", "text/*"}, got.AllowedMimeTypes)
		require.Equal(t, "STANDARD", got.Type)
		requireBucket(t, b.getBucket(t, "cols"), bucketWant{id: "cols", name: "cols", owner: "", public: true,
			fileSizeLimit: json.Number("1000000"), allowedMimeTypes: []any{"image/png", "text/*"}})
	})

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"d"}`)
		got := mustStoredBucket(t, b.db, "d")
		require.False(t, got.Public)
		require.Nil(t, got.FileSizeLimit)
		require.Nil(t, got.AllowedMimeTypes)
		require.Equal(t, "STANDARD", got.Type)
		requireBucket(t, b.getBucket(t, "d"), bucketWant{id: "d", name: "d", owner: ""})
	})

	t.Run("Ownership", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		// owner = sub when UUID-shaped, else NULL; owner_id = sub verbatim (spec §2.2 create 5).
		uuidSvc := mintJWT(t, "service_role", withSub(userA.Sub))
		textSvc := mintJWT(t, "service_role", withSub("user-42"))
		requireOKBody(t, b.do(t, "POST", "/bucket", uuidSvc, `{"name":"u"}`), `{"name":"u"}`)
		requireOKBody(t, b.do(t, "POST", "/bucket", textSvc, `{"name":"v"}`), `{"name":"v"}`)
		u := mustStoredBucket(t, b.db, "u")
		require.Equal(t, ptr(userA.Sub), u.Owner)
		require.Equal(t, ptr(userA.Sub), u.OwnerID)
		v := mustStoredBucket(t, b.db, "v")
		require.Nil(t, v.Owner)
		require.Equal(t, ptr("user-42"), v.OwnerID)
		requireBucket(t, b.getBucket(t, "u"), bucketWant{id: "u", name: "u", owner: userA.Sub})
		requireBucket(t, b.getBucket(t, "v"), bucketWant{id: "v", name: "v", owner: ""})
	})

	t.Run("CreatedThroughSQLIsVisibleOverHTTP", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		ownerSQL(t, b.db, `select storage.bucket_create(name => 'x')`)
		requireBucket(t, b.getBucket(t, "x"), bucketWant{id: "x", name: "x", owner: ""})
		require.Equal(t, []string{"x"}, names(b.listBuckets(t, "", b.service)))
	})

	t.Run("IDDiffersFromName", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireOKBody(t, b.do(t, "POST", "/bucket", b.service, `{"name":"the-name","id":"the-id"}`), `{"name":"the-name"}`)
		requireBucket(t, b.getBucket(t, "the-id"), bucketWant{id: "the-id", name: "the-name", owner: ""})
		requireAPIError(t, b.do(t, "GET", "/bucket/the-name", b.service, ""), 400, errNoSuchBucket)
		// Names are unique too.
		requireAPIError(t, b.do(t, "POST", "/bucket", b.service, `{"name":"the-name","id":"other-id"}`), 400,
			apiError{"409", "BucketAlreadyExists", "Duplicate", "The resource already exists"})
	})

	t.Run("Coercion", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		// JSON schema with type coercion (spec §1.2); unknown properties are ignored.
		b.createBucket(t, `{"name":"c","public":"true","file_size_limit":"60","unknown":{"x":1}}`)
		got := mustStoredBucket(t, b.db, "c")
		require.True(t, got.Public)
		require.Equal(t, ptr(int64(60)), got.FileSizeLimit)
	})

	t.Run("AnalyticsTypeNotEnabled", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		r := b.do(t, "POST", "/bucket", b.service, `{"name":"an","type":"ANALYTICS"}`)
		requireAPIErrorCode(t, r, 400, "409", "FeatureNotEnabled")
		requireNoStoredBucket(t, b.db, "an")
		requireAPIErrorCode(t, b.do(t, "POST", "/bucket", b.service, `{"name":"an","type":"OTHER"}`), 400, "400", "InvalidRequest")
		b.createBucket(t, `{"name":"st","type":"STANDARD"}`)
	})

	t.Run("MimeTypes", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		// Empty entries are dropped; entries ending in * pass (spec §2.2 create 3).
		b.createBucket(t, `{"name":"m","allowed_mime_types":["image/*","","text/plain;charset=utf-8","foo*"]}`)
		require.Equal(t, []string{"image/*", "text/plain;charset=utf-8", "foo*"}, mustStoredBucket(t, b.db, "m").AllowedMimeTypes)
		for _, bad := range []string{"notamime", "image/", "/png", strings.Repeat("a", 1000) + "*", "image/png*x"} {
			r := b.do(t, "POST", "/bucket", b.service, `{"name":"n","allowed_mime_types":[`+jsonString(bad)+`]}`)
			requireAPIError(t, r, 400, apiError{"415", "InvalidMimeType", "invalid_mime_type", "mime type " + bad + " is not supported"})
		}
		requireNoStoredBucket(t, b.db, "n")
	})
}

func TestHTTPBucketNames(t *testing.T) {
	t.Parallel()

	t.Run("OddValidNameRoundTrips", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		odd := `a b!-_.*'()&$=@;:+,?`
		requireOKBody(t, b.do(t, "POST", "/bucket", b.service, `{"name":`+jsonString(odd)+`}`), `{"name":`+jsonString(odd)+`}`)
		require.Equal(t, odd, mustStoredBucket(t, b.db, odd).Name)
		// Fully percent-encoded and with only what a path needs encoded.
		requireBucket(t, b.getBucket(t, odd), bucketWant{id: odd, name: odd, owner: ""})
		v := okJSON(t, b.do(t, "GET", "/bucket/"+url.PathEscape(odd), b.service, ""))
		require.Equal(t, odd, v.(map[string]any)["name"])
		require.Equal(t, []string{odd}, names(b.listBuckets(t, "", b.service)))
		requireOKBody(t, b.do(t, "PUT", "/bucket/"+percentEncodeAll(odd), b.service, `{"public":true}`), msgUpdated)
		requireOKBody(t, b.do(t, "DELETE", "/bucket/"+percentEncodeAll(odd), b.service, ""), msgDeleted)
		requireNoStoredBucket(t, b.db, odd)
	})

	t.Run("HundredCharacters", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		name := strings.Repeat("x", 100)
		b.createBucket(t, `{"name":"`+name+`"}`)
		requireBucket(t, b.getBucket(t, name), bucketWant{id: name, name: name, owner: ""})
	})

	t.Run("ReservedSuffixOnlyAtTheEnd", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"x--table-s3x"}`)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, name := range []string{"a/b", " lead", "trail ", strings.Repeat("n", 101), "x--table-s3", "é", "", "a%b", "a\\b", "a#b", "tab\there"} {
			requireAPIError(t, b.do(t, "POST", "/bucket", b.service, `{"name":`+jsonString(name)+`}`), 400, errBadName)
		}
		requireOKBody(t, b.do(t, "GET", "/bucket", b.service, ""), `[]`)
	})
}

func TestHTTPBucketFileSizeLimit(t *testing.T) {
	t.Parallel()

	t.Run("Accepted", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for i, tc := range []struct {
			in   string
			want int64
		}{
			{`"1024KB"`, 1020000},
			{`"1MB"`, 1000000},
			{`"1mb"`, 1000000},
			{`1048576`, 1048576},
			{`"1048576"`, 1048576},
			{`0`, 0},
			{`"12345B"`, 12300},
			{`"1.5MB"`, 1500000},
			{`"50MB"`, 50000000},
			{`52428800`, httpUploadLimit},
		} {
			name := "fs" + string(rune('a'+i))
			b.createBucket(t, `{"name":"`+name+`","file_size_limit":`+tc.in+`}`)
			require.Equal(t, ptr(tc.want), mustStoredBucket(t, b.db, name).FileSizeLimit, tc.in)
			require.Equal(t, json.Number(jsonNumber(tc.want)), b.getBucket(t, name)["file_size_limit"], tc.in)
		}
	})

	t.Run("AboveGlobalLimit", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, in := range []string{`"1.5GB"`, `52428801`, `"53MB"`} {
			requireAPIError(t, b.do(t, "POST", "/bucket", b.service, `{"name":"big","file_size_limit":`+in+`}`), 400, errTooLarge)
		}
		requireNoStoredBucket(t, b.db, "big")
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, in := range []string{`"1 MB"`, `-1`, `"abc"`, `"1TB"`, `1.5`, `"-1"`, `"1.5.5MB"`, `[]`} {
			requireAPIErrorCode(t, b.do(t, "POST", "/bucket", b.service, `{"name":"bad","file_size_limit":`+in+`}`), 400, "400", "InvalidRequest")
		}
		requireNoStoredBucket(t, b.db, "bad")
	})

	t.Run("RefusedSizeFormatMessage", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "POST", "/bucket", b.service, `{"name":"bad","file_size_limit":"abc"}`), 400,
			apiError{"400", "InvalidRequest", "InvalidRequest", "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B"})
	})

	t.Run("NullStoresNull", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"n","file_size_limit":null,"allowed_mime_types":null}`)
		got := mustStoredBucket(t, b.db, "n")
		require.Nil(t, got.FileSizeLimit)
		require.Nil(t, got.AllowedMimeTypes)
	})
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// ---------------------------------------------------------------------------------------------
// GET /bucket and GET /bucket/{id}.

func TestHTTPBucketList(t *testing.T) {
	t.Parallel()

	// setupSorted creates alpha…delta whose created_at and updated_at run in other orders
	// than their names, so every sort column is distinguishable. Lower-case ASCII names sort
	// the same in every collation.
	setupSorted := func(t *testing.T) *httpBundle {
		t.Helper()
		b := setupHTTP(t)
		for _, n := range []string{"charlie", "alpha", "delta", "bravo"} {
			b.createBucket(t, `{"name":"`+n+`"}`)
		}
		ownerSQL(t, b.db, `update storage.buckets set
		  created_at = case id when 'alpha' then '2024-01-04' when 'bravo' then '2024-01-03'
		                       when 'charlie' then '2024-01-02' else '2024-01-01' end::timestamptz,
		  updated_at = case id when 'alpha' then '2024-02-02' when 'bravo' then '2024-02-04'
		                       when 'charlie' then '2024-02-01' else '2024-02-03' end::timestamptz`)
		return b
	}

	t.Run("Sorting", func(t *testing.T) {
		t.Parallel()
		b := setupSorted(t)
		for query, want := range map[string][]string{
			"?sortColumn=name":                        {"alpha", "bravo", "charlie", "delta"},
			"?sortColumn=name&sortOrder=asc":          {"alpha", "bravo", "charlie", "delta"},
			"?sortColumn=name&sortOrder=desc":         {"delta", "charlie", "bravo", "alpha"},
			"?sortColumn=id&sortOrder=desc":           {"delta", "charlie", "bravo", "alpha"},
			"?sortColumn=created_at":                  {"delta", "charlie", "bravo", "alpha"},
			"?sortColumn=created_at&sortOrder=desc":   {"alpha", "bravo", "charlie", "delta"},
			"?sortColumn=updated_at&sortOrder=asc":    {"charlie", "alpha", "delta", "bravo"},
			"?sortColumn=updated_at&sortOrder=desc":   {"bravo", "delta", "alpha", "charlie"},
			"?sortColumn=name&limit=2":                {"alpha", "bravo"},
			"?sortColumn=name&limit=2&offset=1":       {"bravo", "charlie"},
			"?sortColumn=name&offset=3":               {"delta"},
			"?sortColumn=name&offset=0&limit=100":     {"alpha", "bravo", "charlie", "delta"},
			"?sortColumn=name&offset=10":              {},
			"?sortColumn=name&sortOrder=desc&limit=1": {"delta"},
		} {
			require.Equal(t, want, names(b.listBuckets(t, query, b.service)), query)
		}
		// Without sortColumn the order is unspecified, the content is not.
		require.ElementsMatch(t, []string{"alpha", "bravo", "charlie", "delta"}, names(b.listBuckets(t, "", b.service)))
		require.Len(t, b.listBuckets(t, "?limit=3", b.service), 3)
	})

	t.Run("InvalidParameters", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for query, msg := range map[string]string{
			"?limit=0":            "querystring/limit must be >= 1",
			"?limit=-5":           "querystring/limit must be >= 1",
			"?offset=-1":          "querystring/offset must be >= 0",
			"?limit=abc":          "querystring/limit must be integer",
			"?sortColumn=owner":   "querystring/sortColumn must be equal to one of the allowed values",
			"?sortColumn=NAME":    "querystring/sortColumn must be equal to one of the allowed values",
			"?sortOrder=up":       "querystring/sortOrder must be equal to one of the allowed values",
			"?sortColumn=name;id": "querystring/sortColumn must be equal to one of the allowed values",
		} {
			requireAPIError(t, b.do(t, "GET", "/bucket"+query, b.service, ""), 400, apiError{"400", "InvalidRequest", "Error", msg})
		}
	})

	t.Run("Search", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, n := range []string{"Alpha-One", "alpha_two", "alphaxtwo", "beta"} {
			b.createBucket(t, `{"name":"`+n+`"}`)
		}
		// Names the API refuses, put in directly, to show %, \ are matched literally.
		ownerSQL(t, b.db, `insert into storage.buckets (id, name) values ('50%off', '50%off'), ('back\slash', 'back\slash')`)
		for query, want := range map[string][]string{
			"?search=ALPHA":  {"Alpha-One", "alpha_two", "alphaxtwo"},
			"?search=pha-o":  {"Alpha-One"},
			"?search=_":      {"alpha_two"},
			"?search=a_t":    {"alpha_two"},
			"?search=%25":    {"50%off"},
			"?search=0%25o":  {"50%off"},
			"?search=%5C":    {"back\\slash"},
			"?search=zzz":    {},
			"?search=":       {"Alpha-One", "alpha_two", "alphaxtwo", "beta", "50%off", "back\\slash"},
			"?search=%25%25": {},
			"?search=beta":   {"beta"},
			"?search=a":      {"Alpha-One", "alpha_two", "alphaxtwo", "beta", "back\\slash"},
		} {
			require.ElementsMatch(t, want, names(b.listBuckets(t, query, b.service)), query)
		}
	})

	t.Run("TypeAndLegacyPythonClients", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b"}`)
		for _, tc := range []struct {
			header, value string
			withType      bool
		}{
			{"", "", true},
			{"User-Agent", "supabase-py/storage3 v0.12.0", false},
			{"User-Agent", "supabase-py/storage3 v0.11.9", false},
			{"User-Agent", "supabase-py/storage3 v0.12.1", true},
			{"User-Agent", "supabase-py/storage3 v1.0.0", true},
			{"User-Agent", "storage-js/2.119.0", true},
			{"X-Client-Info", "supabase-py/2.17.9", false},
			{"X-Client-Info", "supabase-py/1.99.99", false},
			{"X-Client-Info", "supabase-py/2.18.0", true},
			{"X-Client-Info", "supabase-py/3.0.0", true},
		} {
			var opts []reqOpt
			if tc.header != "" {
				opts = append(opts, withHeader(tc.header, tc.value))
			}
			items := b.listBuckets(t, "", b.service, opts...)
			require.Len(t, items, 1)
			requireBucket(t, items[0], bucketWant{id: "b", name: "b", owner: "", withType: tc.withType})
		}
		// GET /bucket/{id} never has type.
		requireBucket(t, b.getBucket(t, "b"), bucketWant{id: "b", name: "b", owner: ""})
	})

	t.Run("ItemFields", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"p","public":true,"file_size_limit":1048576,"allowed_mime_types":["image/*"]}`)
		items := b.listBuckets(t, "", b.service)
		require.Len(t, items, 1)
		requireBucket(t, items[0], bucketWant{id: "p", name: "p", owner: "", public: true,
			fileSizeLimit: json.Number("1048576"), allowedMimeTypes: []any{"image/*"}, withType: true})
	})

	t.Run("GetMissing", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "GET", "/bucket/missing", b.service, ""), 400, errNoSuchBucket)
	})
}

// ---------------------------------------------------------------------------------------------
// PUT /bucket/{id}.

func TestHTTPBucketUpdate(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) *httpBundle {
		t.Helper()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b","file_size_limit":100,"allowed_mime_types":["text/plain"]}`)
		return b
	}

	t.Run("NothingToChange", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{`{}`, `{"name":"x"}`, `{"id":"x","name":"y"}`} {
			requireAPIErrorCode(t, b.do(t, "PUT", "/bucket/b", b.service, body), 400, "400", "InvalidRequest")
		}
		r := b.do(t, "PUT", "/bucket/b", b.service, "", withHeader("Content-Type", "application/json"))
		requireAPIErrorCode(t, r, 400, "400", "InvalidRequest")
	})

	t.Run("Public", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		before := mustStoredBucket(t, b.db, "b")
		requireOKBody(t, b.do(t, "PUT", "/bucket/b", b.service, `{"public":true}`), msgUpdated)
		after := mustStoredBucket(t, b.db, "b")
		require.True(t, after.Public)
		require.Equal(t, before.FileSizeLimit, after.FileSizeLimit)
		require.Equal(t, before.AllowedMimeTypes, after.AllowedMimeTypes)
		require.Equal(t, before.UpdatedAt, after.UpdatedAt, "updated_at is not bumped")
		requireOKBody(t, b.do(t, "PUT", "/bucket/b", b.service, `{"public":false}`), msgUpdated)
		require.False(t, mustStoredBucket(t, b.db, "b").Public)
	})

	t.Run("ExtraPropertiesIgnored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireOKBody(t, b.do(t, "PUT", "/bucket/b", b.service, `{"id":"other","name":"other","public":true}`), msgUpdated)
		got := mustStoredBucket(t, b.db, "b")
		require.Equal(t, "b", got.Name)
		require.True(t, got.Public)
		requireNoStoredBucket(t, b.db, "other")
	})

	t.Run("FileSizeLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireOKBody(t, b.do(t, "PUT", "/bucket/b", b.service, `{"file_size_limit":"2MB"}`), msgUpdated)
		require.Equal(t, ptr(int64(2000000)), mustStoredBucket(t, b.db, "b").FileSizeLimit)
		requireOKBody(t, b.do(t, "PUT", "/bucket/b", b.service, `{"file_size_limit":null}`), msgUpdated)
		got := mustStoredBucket(t, b.db, "b")
		require.Nil(t, got.FileSizeLimit)
		require.Equal(t, []string{"text/plain"}, got.AllowedMimeTypes, "untouched")
		require.Nil(t, b.getBucket(t, "b")["file_size_limit"])
		requireAPIError(t, b.do(t, "PUT", "/bucket/b", b.service, `{"file_size_limit":"1.5GB"}`), 400, errTooLarge)
		requireAPIErrorCode(t, b.do(t, "PUT", "/bucket/b", b.service, `{"file_size_limit":-1}`), 400, "400", "InvalidRequest")
		requireAPIErrorCode(t, b.do(t, "PUT", "/bucket/b", b.service, `{"file_size_limit":"1 MB"}`), 400, "400", "InvalidRequest")
		require.Nil(t, mustStoredBucket(t, b.db, "b").FileSizeLimit)
	})

	t.Run("AllowedMimeTypes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireOKBody(t, b.do(t, "PUT", "/bucket/b", b.service, `{"allowed_mime_types":["image/*"]}`), msgUpdated)
		require.Equal(t, []string{"image/*"}, mustStoredBucket(t, b.db, "b").AllowedMimeTypes)
		require.Equal(t, []any{"image/*"}, b.getBucket(t, "b")["allowed_mime_types"])
		requireAPIError(t, b.do(t, "PUT", "/bucket/b", b.service, `{"allowed_mime_types":["notamime"]}`), 400,
			apiError{"415", "InvalidMimeType", "invalid_mime_type", "mime type notamime is not supported"})
		require.Equal(t, []string{"image/*"}, mustStoredBucket(t, b.db, "b").AllowedMimeTypes)
		requireOKBody(t, b.do(t, "PUT", "/bucket/b", b.service, `{"allowed_mime_types":null}`), msgUpdated)
		got := mustStoredBucket(t, b.db, "b")
		require.Nil(t, got.AllowedMimeTypes)
		require.Equal(t, ptr(int64(100)), got.FileSizeLimit, "untouched")
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "PUT", "/bucket/missing", b.service, `{"public":true}`), 400, errNoSuchBucket)
		requireNoStoredBucket(t, b.db, "missing")
	})
}

// ---------------------------------------------------------------------------------------------
// DELETE /bucket/{id}.

func TestHTTPBucketDelete(t *testing.T) {
	t.Parallel()

	t.Run("BodyVariants", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, tc := range []struct {
			name, body string
			opts       []reqOpt
		}{
			{"absent", "", nil},
			{"emptyobject", "{}", nil},
			{"emptyjson", "", []reqOpt{withHeader("Content-Type", "application/json")}},
			{"emptyjsoncharset", "", []reqOpt{withHeader("Content-Type", "application/json; charset=utf-8")}},
		} {
			b.createBucket(t, `{"name":"`+tc.name+`"}`)
			requireOKBody(t, b.do(t, "DELETE", "/bucket/"+tc.name, b.service, tc.body, tc.opts...), msgDeleted)
			requireNoStoredBucket(t, b.db, tc.name)
		}
	})

	t.Run("NotEmpty", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b"}`)
		putObjectRow(t, b.db, "b", "folder/k")
		requireAPIError(t, b.do(t, "DELETE", "/bucket/b", b.service, ""), 400,
			apiError{"409", "ResourceNotEmpty", "ResourceNotEmpty", "The bucket you tried to delete is not empty"})
		mustStoredBucket(t, b.db, "b")
		require.Equal(t, 1, objectCount(t, b.db, "b"))
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "DELETE", "/bucket/missing", b.service, ""), 400, errNoSuchBucket)
		requireAPIError(t, b.do(t, "DELETE", "/bucket/missing", b.service, "{}"), 400, errNoSuchBucket)
	})
}

// ---------------------------------------------------------------------------------------------
// POST /bucket/{id}/empty.

func TestHTTPBucketEmpty(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) *httpBundle {
		t.Helper()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b"}`)
		return b
	}
	invalidRole := apiError{"403", "AccessDenied", "Unauthorized", "Access denied: Invalid role"}

	t.Run("NonServiceRolesGet403", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		putObjectRow(t, b.db, "b", "k")
		for _, tok := range []string{b.userA, b.anon, mintJWT(t, "")} {
			requireAPIError(t, b.do(t, "POST", "/bucket/b/empty", tok, ""), 403, invalidRole)
		}
		// The role check comes before the bucket lookup.
		requireAPIError(t, b.do(t, "POST", "/bucket/missing/empty", b.userA, ""), 403, invalidRole)
		require.Equal(t, 1, objectCount(t, b.db, "b"))
	})

	t.Run("InvalidJWTFailsEarlier", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "POST", "/bucket/b/empty", "not-a-jwt", ""), 400,
			apiError{"403", "AccessDenied", "Unauthorized", "Invalid Compact JWS"})
		expired := mintJWT(t, "service_role", withExp(time.Now().Add(-time.Hour)))
		requireAPIError(t, b.do(t, "POST", "/bucket/b/empty", expired, ""), 400,
			apiError{"403", "AccessDenied", "Unauthorized", `"exp" claim timestamp check failed`})
		requireAPIError(t, b.do(t, "POST", "/bucket/b/empty", "", ""), 400, errNoAuthHeader)
	})

	t.Run("EmptyBucket", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireOKBody(t, b.do(t, "POST", "/bucket/b/empty", b.service, ""), msgEmptied)
		requireOKBody(t, b.do(t, "POST", "/bucket/b/empty", b.service, "{}"), msgEmptied)
		requireOKBody(t, b.do(t, "POST", "/bucket/b/empty", b.service, "", withHeader("Content-Type", "application/json")), msgEmptied)
		mustStoredBucket(t, b.db, "b")
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireAPIError(t, b.do(t, "POST", "/bucket/missing/empty", b.service, ""), 400, errNoSuchBucket)
	})

	t.Run("ObjectsAreGone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createBucket(t, `{"name":"other"}`)
		for _, k := range []string{"a", "folder/b", "folder/deeper/c"} {
			putObjectRow(t, b.db, "b", k)
		}
		putObjectRow(t, b.db, "other", "keep")
		requireOKBody(t, b.do(t, "POST", "/bucket/b/empty", b.service, ""), msgEmptied)
		// Emptying may be asynchronous (spec §2.2): wait for it.
		require.Eventually(t, func() bool { return objectCount(t, b.db, "b") == 0 }, 10*time.Second, 50*time.Millisecond)
		mustStoredBucket(t, b.db, "b")
		require.Equal(t, 1, objectCount(t, b.db, "other"))
		requireOKBody(t, b.do(t, "DELETE", "/bucket/b", b.service, ""), msgDeleted)
	})
}

// ---------------------------------------------------------------------------------------------
// Row-level security through HTTP (spec §2.2, §3.3, §3.6).

func TestHTTPBucketRLS(t *testing.T) {
	t.Parallel()

	t.Run("AnonWithoutPolicies", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		b.createBucket(t, `{"name":"b"}`)
		requireOKBody(t, b.do(t, "GET", "/bucket", b.anon, ""), `[]`)
		requireAPIError(t, b.do(t, "GET", "/bucket/b", b.anon, ""), 400, errNoSuchBucket)
		requireAPIError(t, b.do(t, "POST", "/bucket", b.anon, `{"name":"anon-made"}`), 400, errRLSInsert)
		requireNoStoredBucket(t, b.db, "anon-made")
		requireAPIError(t, b.do(t, "PUT", "/bucket/b", b.anon, `{"public":true}`), 400, errNoSuchBucket)
		requireAPIError(t, b.do(t, "DELETE", "/bucket/b", b.anon, ""), 400, errNoSuchBucket)
		got := mustStoredBucket(t, b.db, "b")
		require.False(t, got.Public)
	})

	t.Run("AuthenticatedWithoutPolicies", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		requireAPIError(t, b.do(t, "POST", "/bucket", b.userA, `{"name":"a"}`), 400, errRLSInsert)
		requireNoStoredBucket(t, b.db, "a")
		requireOKBody(t, b.do(t, "GET", "/bucket", b.userA, ""), `[]`)
	})

	t.Run("OwnerPolicies", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		ownerSQL(t, b.db, `create policy p_select on storage.buckets for select to authenticated
		  using (owner_id = (select auth.uid())::text)`)
		ownerSQL(t, b.db, `create policy p_insert on storage.buckets for insert to authenticated
		  with check (owner_id = (select auth.uid())::text)`)

		requireOKBody(t, b.do(t, "POST", "/bucket", b.userA, `{"name":"bucket-a"}`), `{"name":"bucket-a"}`)
		requireOKBody(t, b.do(t, "POST", "/bucket", b.userB, `{"name":"bucket-b"}`), `{"name":"bucket-b"}`)
		b.createBucket(t, `{"name":"service-made"}`)
		a := mustStoredBucket(t, b.db, "bucket-a")
		require.Equal(t, ptr(userA.Sub), a.Owner)
		require.Equal(t, ptr(userA.Sub), a.OwnerID)
		require.Equal(t, ptr(userB.Sub), mustStoredBucket(t, b.db, "bucket-b").OwnerID)

		// Each user sees only its own bucket; the service key sees all.
		items := b.listBuckets(t, "", b.userA)
		require.Len(t, items, 1)
		requireBucket(t, items[0], bucketWant{id: "bucket-a", name: "bucket-a", owner: userA.Sub, withType: true})
		require.Equal(t, []string{"bucket-b"}, names(b.listBuckets(t, "", b.userB)))
		require.ElementsMatch(t, []string{"bucket-a", "bucket-b", "service-made"}, names(b.listBuckets(t, "", b.service)))
		v := okJSON(t, b.do(t, "GET", "/bucket/bucket-a", b.userA, ""))
		requireBucket(t, v.(map[string]any), bucketWant{id: "bucket-a", name: "bucket-a", owner: userA.Sub})
		requireAPIError(t, b.do(t, "GET", "/bucket/bucket-b", b.userA, ""), 400, errNoSuchBucket)
		requireAPIError(t, b.do(t, "GET", "/bucket/service-made", b.userA, ""), 400, errNoSuchBucket)
		requireOKBody(t, b.do(t, "GET", "/bucket", b.anon, ""), `[]`)

		// The insert policy holds users to their own sub: a duplicate of a hidden bucket is
		// still a duplicate, a bucket for nobody is refused.
		requireAPIError(t, b.do(t, "POST", "/bucket", b.userA, `{"name":"bucket-b"}`), 400,
			apiError{"409", "BucketAlreadyExists", "Duplicate", "The resource already exists"})
		requireAPIError(t, b.do(t, "POST", "/bucket", b.anon, `{"name":"anon-made"}`), 400, errRLSInsert)

		// No UPDATE or DELETE policy yet: nobody but the service key changes anything.
		requireAPIError(t, b.do(t, "PUT", "/bucket/bucket-b", b.userA, `{"public":true}`), 400, errNoSuchBucket)
		requireAPIError(t, b.do(t, "PUT", "/bucket/bucket-a", b.userA, `{"public":true}`), 400, errNoSuchBucket)
		requireAPIError(t, b.do(t, "DELETE", "/bucket/bucket-b", b.userA, ""), 400, errNoSuchBucket)
		requireAPIError(t, b.do(t, "DELETE", "/bucket/bucket-a", b.userA, ""), 400, errNoSuchBucket)
		mustStoredBucket(t, b.db, "bucket-a")
		require.False(t, mustStoredBucket(t, b.db, "bucket-b").Public)

		ownerSQL(t, b.db, `create policy p_update on storage.buckets for update to authenticated
		  using (owner_id = (select auth.uid())::text)`)
		ownerSQL(t, b.db, `create policy p_delete on storage.buckets for delete to authenticated
		  using (owner_id = (select auth.uid())::text)`)

		// Now users manage their own bucket, and still not the other's.
		requireOKBody(t, b.do(t, "PUT", "/bucket/bucket-a", b.userA, `{"public":true}`), msgUpdated)
		require.True(t, mustStoredBucket(t, b.db, "bucket-a").Public)
		requireAPIError(t, b.do(t, "PUT", "/bucket/bucket-b", b.userA, `{"public":true}`), 400, errNoSuchBucket)
		require.False(t, mustStoredBucket(t, b.db, "bucket-b").Public)
		requireAPIError(t, b.do(t, "DELETE", "/bucket/bucket-b", b.userA, ""), 400, errNoSuchBucket)
		mustStoredBucket(t, b.db, "bucket-b")
		requireOKBody(t, b.do(t, "DELETE", "/bucket/bucket-a", b.userA, ""), msgDeleted)
		requireNoStoredBucket(t, b.db, "bucket-a")

		// Emptiness is checked whatever the caller sees (spec §2.2 delete semantics).
		putObjectRow(t, b.db, "bucket-b", "k")
		requireAPIError(t, b.do(t, "DELETE", "/bucket/bucket-b", b.userB, ""), 400,
			apiError{"409", "ResourceNotEmpty", "ResourceNotEmpty", "The bucket you tried to delete is not empty"})
		// Empty stays service-only whatever the policies.
		requireAPIError(t, b.do(t, "POST", "/bucket/bucket-b/empty", b.userB, ""), 403,
			apiError{"403", "AccessDenied", "Unauthorized", "Access denied: Invalid role"})
	})

	t.Run("RequestSettingsReachPolicies", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		// Policies can read the operation, method and headers the proxy sets (spec §3.4).
		ownerSQL(t, b.db, `create policy p_insert on storage.buckets for insert to anon
		  with check (storage.operation() = 'storage.bucket.create'
		              and current_setting('request.method', true) = 'POST'
		              and current_setting('request.headers', true)::jsonb ->> 'x-allow' = 'yes')`)
		ownerSQL(t, b.db, `create policy p_select on storage.buckets for select to anon
		  using (storage.operation() = 'storage.bucket.list'
		         and current_setting('request.path', true) like '/bucket?%')`)
		requireAPIError(t, b.do(t, "POST", "/bucket", b.anon, `{"name":"no"}`), 400, errRLSInsert)
		requireOKBody(t, b.do(t, "POST", "/bucket", b.anon, `{"name":"yes"}`, withHeader("X-Allow", "yes")), `{"name":"yes"}`)
		requireOKBody(t, b.do(t, "GET", "/bucket", b.anon, ""), `[]`)
		require.Equal(t, []string{"yes"}, names(b.listBuckets(t, "?sortColumn=name", b.anon)))
		requireAPIError(t, b.do(t, "GET", "/bucket/yes", b.anon, ""), 400, errNoSuchBucket)
	})
}
