package proxy

import (
	"encoding/json"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// supabaseRequestSettings are the settings (GUCs) Supabase Storage sets, transaction-locally
// with set_config(…, true), at the start of every request's database work: its database
// scope, documented in /work/shared/spec/API.md §3.4 ("How claims reach Postgres").
// Policies and the auth.* helpers written for Supabase read exactly these names, so the
// prelude must set every one of them.
var supabaseRequestSettings = []string{
	"role",
	"request.jwt.claim.role",
	"request.jwt",
	"request.jwt.claim.sub",
	"request.jwt.claims",
	"request.headers",
	"request.method",
	"request.path",
	"storage.operation",
	"storage.allow_delete_query",
}

// ourRequestSettings are the settings the prelude sets beyond Supabase's.
var ourRequestSettings = []string{"storage.upload_file_size_limit", "storage.request_id", "statement_timeout", "lock_timeout"}

var setConfigCall = regexp.MustCompile(`set_config\('([a-z_.]+)', \$([0-9]+), (true|false)\)`)

func TestPreludeSQL(t *testing.T) {
	t.Parallel()

	// The statement is "select" and one set_config call per setting, nothing else.
	require.Regexp(t, `^select set_config\(.*\)$`, preludeSQL)
	calls := setConfigCall.FindAllStringSubmatch(preludeSQL, -1)
	rest := setConfigCall.ReplaceAllString(preludeSQL, "X")
	require.Regexp(t, `^select X(, X)*$`, rest, "only set_config calls: %s", preludeSQL)

	var names []string
	for i, c := range calls {
		names = append(names, c[1])
		require.Equal(t, strconv.Itoa(i+1), c[2], "%s binds $%d", c[1], i+1)
		require.Equal(t, "true", c[3], "%s must be transaction-local (is_local true)", c[1])
	}
	require.Equal(t, preludeSettings, names, "the prelude sets exactly preludeSettings, in order")

	// No setting twice.
	seen := map[string]bool{}
	for _, n := range names {
		require.False(t, seen[n], "%s set twice", n)
		seen[n] = true
	}
	// Every setting Supabase Storage sets, and only ours besides.
	for _, n := range supabaseRequestSettings {
		require.True(t, seen[n], "the prelude does not set %s", n)
	}
	require.ElementsMatch(t, append(append([]string{}, supabaseRequestSettings...), ourRequestSettings...), names)
}

func TestPreludeArgs(t *testing.T) {
	t.Parallel()

	at := func(args []any, name string) any {
		for i, n := range preludeSettings {
			if n == name {
				return args[i]
			}
		}
		t.Fatalf("no setting %s", name)
		return nil
	}

	t.Run("Authenticated", func(t *testing.T) {
		t.Parallel()
		id := Identity{Role: "authenticated", Sub: "u1", Claims: `{"sub":"u1","role":"authenticated"}`, Token: "h.p.s"}
		args := preludeArgs(id, opBucketList, `{"x-a":"1"}`, "GET", "/bucket?limit=1", "req-1", "52428800", "30000", "5000")
		require.Len(t, args, len(preludeSettings))
		for name, want := range map[string]string{
			"role":                           "authenticated",
			"request.jwt.claim.role":         "authenticated",
			"request.jwt":                    "h.p.s",
			"request.jwt.claim.sub":          "u1",
			"request.jwt.claims":             `{"sub":"u1","role":"authenticated"}`,
			"request.headers":                `{"x-a":"1"}`,
			"request.method":                 "GET",
			"request.path":                   "/bucket?limit=1",
			"storage.operation":              "storage.bucket.list",
			"storage.allow_delete_query":     "true",
			"storage.upload_file_size_limit": "52428800",
			"storage.request_id":             "req-1",
			"statement_timeout":              "30000",
			"lock_timeout":                   "5000",
		} {
			require.Equal(t, want, at(args, name), name)
		}
	})

	t.Run("AnonymousClaimsCarryTheRole", func(t *testing.T) {
		t.Parallel()
		args := preludeArgs(anonymous, opHealth, "{}", "GET", "/health", "", "", "0", "0")
		require.Equal(t, "anon", at(args, "role"))
		require.Equal(t, "", at(args, "request.jwt"))
		require.Equal(t, "", at(args, "request.jwt.claim.sub"))
		require.JSONEq(t, `{"role":"anon"}`, at(args, "request.jwt.claims").(string))
		// A role needing escapes still gives valid JSON.
		args = preludeArgs(Identity{Role: `we"ird\`}, opHealth, "{}", "GET", "/", "", "", "0", "0")
		require.JSONEq(t, `{"role":"we\"ird\\"}`, at(args, "request.jwt.claims").(string))
	})

	t.Run("Prelude", func(t *testing.T) {
		t.Parallel()
		id := Identity{Role: "service_role", Claims: `{"role":"service_role"}`}
		sql, args := Prelude(id, "test")
		require.Equal(t, preludeSQL, sql)
		require.Len(t, args, len(preludeSettings))
		require.Equal(t, "service_role", at(args, "role"))
		require.Equal(t, "test", at(args, "storage.operation"))
		require.Equal(t, "{}", at(args, "request.headers"))
		// Tools and SQL tests run without the server's timeouts.
		require.Equal(t, "0", at(args, "statement_timeout"))
		require.Equal(t, "0", at(args, "lock_timeout"))
	})
}

func TestHeadersJSON(t *testing.T) {
	t.Parallel()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/bucket")
	ctx.Request.Header.Set("Authorization", "Bearer x.y.z")
	ctx.Request.Header.Set("X-Client-Info", `storage-js/2.0 "quoted"`)
	ctx.Request.Header.Add("X-Multi", "a")
	ctx.Request.Header.Add("X-Multi", "b")
	ctx.Request.Header.Set("User-Agent", "ua")

	var got map[string]string
	require.NoError(t, json.Unmarshal([]byte(headersJSON(&ctx)), &got), headersJSON(&ctx))
	require.Equal(t, "Bearer x.y.z", got["authorization"])
	require.Equal(t, `storage-js/2.0 "quoted"`, got["x-client-info"])
	require.Equal(t, "a, b", got["x-multi"])
	require.Equal(t, "ua", got["user-agent"])
	for k := range got {
		require.Regexp(t, `^[a-z0-9-]+$`, k, "header names are lower-case")
	}
}

// TestHeadersJSONOnePass: without repeated names the one-pass writer renders exactly what the
// general one does (names lower-cased, values escaped, request order).
func TestHeadersJSONOnePass(t *testing.T) {
	t.Parallel()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/object/b/k")
	ctx.Request.Header.Set("Authorization", "Bearer x.y.z")
	ctx.Request.Header.Set("X-Client-Info", "storage-js/2.0 \"quoted\" \\ tab\t é")
	ctx.Request.Header.Set("Content-Type", "text/plain")
	ctx.Request.Header.Set("X-UPSERT", "true")
	ctx.Request.Header.Set("User-Agent", "ua")
	fast := headersJSON(&ctx)
	require.Equal(t, headersJSONRepeated(&ctx), fast)
	var got map[string]string
	require.NoError(t, json.Unmarshal([]byte(fast), &got), fast)
	require.Equal(t, "true", got["x-upsert"])
	require.Equal(t, "storage-js/2.0 \"quoted\" \\ tab\t é", got["x-client-info"])
}

func TestOperationIDs(t *testing.T) {
	t.Parallel()
	// The names Supabase Storage writes to storage.operation (spec §3.4).
	require.Equal(t, "storage.bucket.create", opBucketCreate)
	require.Equal(t, "storage.bucket.get", opBucketGet)
	require.Equal(t, "storage.bucket.list", opBucketList)
	require.Equal(t, "storage.bucket.update", opBucketUpdate)
	require.Equal(t, "storage.bucket.delete", opBucketDelete)
	require.Equal(t, "storage.bucket.empty", opBucketEmpty)
}
