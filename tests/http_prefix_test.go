package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
)

// The gateway shape: supabase-js builds its storage URL as <url>/storage/v1, as Supabase's API
// gateway serves it, so every route answers at /… and at /storage/v1/…. Each case below sends
// its route's request under the prefix and asserts the route's own answer; a check against the
// router's list makes the table cover every registered route.

// gatewayPrefix is where supabase-js addresses storage.
const gatewayPrefix = "/storage/v1"

// prefixCase is one registered route (its method and pattern as routes.go writes them) and a
// request to it under the prefix, with the assertions of that route's answer.
type prefixCase struct {
	route string // "GET /object/{bucket}/{key:*}"
	run   func(t *testing.T)
}

func TestHTTPGatewayPrefix(t *testing.T) {
	t.Parallel()

	t.Run("EveryRoute", func(t *testing.T) {
		t.Parallel()
		o := newObjEnv(t, signFileBackend(t)) // private bucket "b"
		o.mkBucket(t, `{"name":"pub","public":true}`)
		o.mustUpload(t, "pub", "p.txt", "public", withHeader("Content-Type", "text/plain"))
		// do sends method path under the prefix.
		do := func(t *testing.T, method, path, token, body string, opts ...reqOpt) httpResponse {
			t.Helper()
			return o.do(t, method, gatewayPrefix+path, token, body, opts...)
		}
		requireHead := func(t *testing.T, r httpResponse, content string) {
			t.Helper()
			require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
			require.Empty(t, r.Body)
			require.Equal(t, quotedMD5(content), r.Header.Get("ETag"))
		}
		requireInfo := func(t *testing.T, r httpResponse, name string, size int) {
			t.Helper()
			m := requireOKJSON(t, r).(map[string]any)
			require.Equal(t, name, m["name"], "body: %s", r.Body)
			require.Equal(t, float64(size), m["size"], "body: %s", r.Body)
		}
		var signedURL, uploadURL string // minted by one case, used by the next
		cases := []prefixCase{
			{"GET /status", func(t *testing.T) {
				r := do(t, "GET", "/status", "", "")
				require.Equal(t, http.StatusOK, r.Status)
				require.Empty(t, r.Body)
			}},
			{"GET /version", func(t *testing.T) {
				r := do(t, "GET", "/version", "", "")
				require.Equal(t, http.StatusOK, r.Status)
				require.Equal(t, httpVersion, string(r.Body))
			}},
			{"GET /health", func(t *testing.T) {
				requireOKBody(t, do(t, "GET", "/health", o.service, ""), `{"healthy":true}`)
			}},
			{"POST /bucket", func(t *testing.T) {
				requireOKBody(t, do(t, "POST", "/bucket", o.service, `{"name":"made"}`), `{"name":"made"}`)
				mustStoredBucket(t, o.db, "made")
			}},
			{"GET /bucket/{id}", func(t *testing.T) {
				m := requireOKJSON(t, do(t, "GET", "/bucket/made", o.service, "")).(map[string]any)
				require.Equal(t, "made", m["id"])
				require.Equal(t, false, m["public"])
			}},
			{"PUT /bucket/{id}", func(t *testing.T) {
				requireOKBody(t, do(t, "PUT", "/bucket/made", o.service, `{"public":true}`), msgUpdated)
				require.True(t, mustStoredBucket(t, o.db, "made").Public)
			}},
			{"GET /bucket", func(t *testing.T) {
				var list []map[string]any
				require.NoError(t, json.Unmarshal(okJSONBody(t, do(t, "GET", "/bucket?sortColumn=name", o.service, "")), &list))
				require.Equal(t, []string{"b", "made", "pub"}, names(list))
			}},
			{"POST /bucket/{id}/empty", func(t *testing.T) {
				requireOKBody(t, do(t, "POST", "/bucket/made/empty", o.service, ""), msgEmptied)
			}},
			{"DELETE /bucket/{id}", func(t *testing.T) {
				requireOKBody(t, do(t, "DELETE", "/bucket/made", o.service, ""), msgDeleted)
				requireNoStoredBucket(t, o.db, "made")
			}},
			{"POST /object/{bucket}/{key:*}", func(t *testing.T) {
				requireUploaded(t, do(t, "POST", "/object/b/dir/up.txt", o.service, "up", withHeader("Content-Type", "text/plain")), "b/dir/up.txt")
				require.Equal(t, "up", o.content(t, "b", "dir/up.txt"))
			}},
			{"PUT /object/{bucket}/{key:*}", func(t *testing.T) {
				requireUploaded(t, do(t, "PUT", "/object/b/dir/up.txt", o.service, "up2", withHeader("Content-Type", "text/plain")), "b/dir/up.txt")
				require.Equal(t, "up2", o.content(t, "b", "dir/up.txt"))
			}},
			{"GET /object/authenticated/{bucket}/{key:*}", func(t *testing.T) {
				requireBytes(t, do(t, "GET", "/object/authenticated/b/dir/up.txt", o.service, ""), "up2")
			}},
			{"GET /object/public/{bucket}/{key:*}", func(t *testing.T) {
				requireBytes(t, do(t, "GET", "/object/public/pub/p.txt", "", ""), "public")
			}},
			{"GET /object/{bucket}/{key:*}", func(t *testing.T) {
				requireBytes(t, do(t, "GET", "/object/b/dir/up.txt", o.service, ""), "up2")
				requireBytes(t, do(t, "GET", "/object/pub/p.txt", "", ""), "public")
			}},
			{"HEAD /object/authenticated/{bucket}/{key:*}", func(t *testing.T) {
				requireHead(t, do(t, "HEAD", "/object/authenticated/b/dir/up.txt", o.service, ""), "up2")
			}},
			{"HEAD /object/public/{bucket}/{key:*}", func(t *testing.T) {
				requireHead(t, do(t, "HEAD", "/object/public/pub/p.txt", "", ""), "public")
			}},
			{"HEAD /object/{bucket}/{key:*}", func(t *testing.T) {
				requireHead(t, do(t, "HEAD", "/object/b/dir/up.txt", o.service, ""), "up2")
			}},
			{"GET /object/info/authenticated/{bucket}/{key:*}", func(t *testing.T) {
				requireInfo(t, do(t, "GET", "/object/info/authenticated/b/dir/up.txt", o.service, ""), "dir/up.txt", 3)
			}},
			{"GET /object/info/public/{bucket}/{key:*}", func(t *testing.T) {
				requireInfo(t, do(t, "GET", "/object/info/public/pub/p.txt", "", ""), "p.txt", 6)
			}},
			{"GET /object/info/{bucket}/{key:*}", func(t *testing.T) {
				requireInfo(t, do(t, "GET", "/object/info/b/dir/up.txt", o.service, ""), "dir/up.txt", 3)
			}},
			{"HEAD /object/info/{bucket}/{key:*}", func(t *testing.T) {
				requireHead(t, do(t, "HEAD", "/object/info/b/dir/up.txt", o.service, ""), "up2")
			}},
			{"POST /object/list/{bucket}", func(t *testing.T) {
				require.Equal(t, []string{"d:dir"}, renderV1Entries(requireV1(t, do(t, "POST", "/object/list/b", o.service, `{"prefix":""}`))))
			}},
			{"POST /object/list-v2/{bucket}", func(t *testing.T) {
				p := requireV2(t, do(t, "POST", "/object/list-v2/b", o.service, `{"prefix":"","with_delimiter":false}`), false, "name")
				require.Equal(t, []string{"dir/up.txt"}, p.objectNames())
			}},
			{"POST /object/copy", func(t *testing.T) {
				requireCopied(t, do(t, "POST", "/object/copy", o.service, `{"bucketId":"b","sourceKey":"dir/up.txt","destinationKey":"copy.txt"}`), "b", "copy.txt")
				require.Equal(t, "up2", o.content(t, "b", "copy.txt"))
			}},
			{"POST /object/move", func(t *testing.T) {
				requireMoved(t, do(t, "POST", "/object/move", o.service, `{"bucketId":"b","sourceKey":"copy.txt","destinationKey":"moved.txt"}`))
				require.Equal(t, "up2", o.content(t, "b", "moved.txt"))
			}},
			{"POST /object/sign/{bucket}/{key:*}", func(t *testing.T) {
				m := requireOKJSON(t, do(t, "POST", "/object/sign/b/moved.txt", o.service, `{"expiresIn":60}`)).(map[string]any)
				signedURL, _ = m["signedURL"].(string)
				// Relative, without the prefix, exactly as at the root: the client prefixes it with
				// its own base, which carries /storage/v1.
				require.True(t, strings.HasPrefix(signedURL, "/object/sign/b/moved.txt?token="), "signedURL %q", signedURL)
			}},
			{"GET /object/sign/{bucket}/{key:*}", func(t *testing.T) {
				require.NotEmpty(t, signedURL)
				r := o.fetch(t, gatewayPrefix+signedURL)
				requireBytes(t, r, "up2")
				require.NotEmpty(t, r.Header.Get("Expires"))
			}},
			{"POST /object/sign/{bucket}", func(t *testing.T) {
				var entries []map[string]any
				require.NoError(t, json.Unmarshal(okJSONBody(t, do(t, "POST", "/object/sign/b", o.service, `{"expiresIn":60,"paths":["moved.txt"]}`)), &entries))
				require.Len(t, entries, 1)
				u, _ := entries[0]["signedURL"].(string)
				require.True(t, strings.HasPrefix(u, "/object/sign/b/moved.txt?token="), "signedURL %q", u)
				requireBytes(t, o.fetch(t, gatewayPrefix+u), "up2")
			}},
			{"POST /object/upload/sign/{bucket}/{key:*}", func(t *testing.T) {
				var m map[string]string
				require.NoError(t, json.Unmarshal(okJSONBody(t, do(t, "POST", "/object/upload/sign/b/signed.txt", o.service, `{}`)), &m))
				uploadURL = m["url"]
				require.True(t, strings.HasPrefix(uploadURL, "/object/upload/sign/b/signed.txt?token="), "url %q", uploadURL)
			}},
			{"PUT /object/upload/sign/{bucket}/{key:*}", func(t *testing.T) {
				require.NotEmpty(t, uploadURL)
				r := o.putSigned(t, gatewayPrefix+uploadURL, "signed")
				require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
				require.Equal(t, "signed", o.content(t, "b", "signed.txt"))
			}},
			{"DELETE /object/{bucket}/{key:*}", func(t *testing.T) {
				requireOKBody(t, do(t, "DELETE", "/object/b/moved.txt", o.service, ""), msgDeleted)
				require.Empty(t, o.column(t, `select name from storage.objects where name = 'moved.txt'`))
			}},
			{"DELETE /object/{bucket}", func(t *testing.T) {
				var rows []map[string]any
				require.NoError(t, json.Unmarshal(okJSONBody(t, do(t, "DELETE", "/object/b", o.service, `{"prefixes":["signed.txt"]}`)), &rows))
				require.Len(t, rows, 1)
				require.Equal(t, "signed.txt", rows[0]["name"])
				require.Empty(t, o.column(t, `select name from storage.objects where name = 'signed.txt'`))
			}},
		}

		// Every registered route has a case, and every route is registered in both shapes.
		var tested []string
		for _, c := range cases {
			tested = append(tested, c.route)
		}
		require.Equal(t, registeredRoutes(t, gatewayPrefix), sortByC(tested), "a case per route under %s", gatewayPrefix)
		require.Equal(t, registeredRoutes(t, ""), sortByC(tested), "a case per route at the root")

		for _, c := range cases { // in order: later cases use what earlier ones made
			if !t.Run(strings.ReplaceAll(c.route, "/", "_"), c.run) {
				return
			}
		}
	})

	t.Run("UnknownRoutes", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		// The prefix routes (so the 404s below are the router's, not a missing prefix)…
		requireOKBody(t, b.do(t, "GET", "/storage/v1/bucket", b.service, ""), `[]`)
		// …and what matches no route under it is the reference's 404, naming the path as sent.
		for _, tc := range []struct{ method, path, token string }{
			{"GET", "/storage/v1/object/does-not-route", b.service},
			{"GET", "/storage/v1/nope", ""},
			{"GET", "/storage/v1/nope?a=1", ""},
			{"PATCH", "/storage/v1/bucket", b.service},
			{"GET", "/storage/v1/bucket/b/empty", b.service},
			{"GET", "/storage/v1", ""},
			{"GET", "/storage/v1/", ""},
			{"GET", "/storage/v1/storage/v1/bucket", b.service}, // the prefix is mounted once
			{"GET", "/storage/v2/bucket", b.service},
			{"GET", "/storage/bucket", b.service},
		} {
			r := b.do(t, tc.method, tc.path, tc.token, "")
			requireAPIError(t, r, 404, apiError{"404", "InvalidRequest", "Not Found",
				"Route " + tc.method + ":" + tc.path + " not found"})
		}
	})

	t.Run("Preflight", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		for _, p := range []string{"/storage/v1/object/b/k.png", "/storage/v1/bucket", "/storage/v1/object/sign/b/k"} {
			r := b.do(t, "OPTIONS", p, "", "", withHeader("Origin", "http://app.example"),
				withHeader("Access-Control-Request-Method", "POST"), withHeader("Access-Control-Request-Headers", "authorization, x-upsert"))
			require.Equal(t, http.StatusNoContent, r.Status, p)
			require.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"), p)
			require.Equal(t, "authorization, x-upsert", r.Header.Get("Access-Control-Allow-Headers"), p)
		}
		// Without Access-Control-Request-Headers the preflight lists ours, the download
		// preconditions included.
		r := b.do(t, "OPTIONS", "/storage/v1/object/b/k.png", "", "", withHeader("Origin", "http://app.example"))
		require.Equal(t, http.StatusNoContent, r.Status)
		allowed := strings.Split(r.Header.Get("Access-Control-Allow-Headers"), ", ")
		for _, h := range []string{"authorization", "range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since"} {
			require.Contains(t, allowed, h)
		}
	})

	t.Run("RequestPathWithoutPrefix", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t)
		// request.path is the path the reference sees behind the gateway: a policy written for
		// it holds whichever shape the client used.
		ownerSQL(t, b.db, `create policy p_select on storage.buckets for select to anon
		  using (current_setting('request.path', true) = '/bucket?sortColumn=name')`)
		b.createBucket(t, `{"name":"seen"}`)
		require.Equal(t, []string{"seen"}, names(b.listBuckets(t, "?sortColumn=name", b.anon)))
		var list []map[string]any
		require.NoError(t, json.Unmarshal(okJSONBody(t, b.do(t, "GET", "/storage/v1/bucket?sortColumn=name", b.anon, "")), &list))
		require.Equal(t, []string{"seen"}, names(list))
	})
}

// registeredRoutes lists the server's routes registered under prefix ("" = the root shape),
// as "METHOD /pattern" with the prefix removed, sorted.
func registeredRoutes(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for method, paths := range proxy.New(proxy.Config{JWTSecret: httpJWTSecret}, nil).Routes() {
		for _, p := range paths {
			under := strings.HasPrefix(p, gatewayPrefix+"/")
			if prefix == "" && !under {
				out = append(out, method+" "+p)
			} else if prefix != "" && under {
				out = append(out, method+" "+strings.TrimPrefix(p, prefix))
			}
		}
	}
	require.NotEmpty(t, out)
	return sortByC(out)
}

// okJSONBody asserts a 200 JSON response and returns its body.
func okJSONBody(t *testing.T, r httpResponse) []byte {
	t.Helper()
	requireOKJSON(t, r)
	return r.Body
}
