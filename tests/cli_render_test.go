package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCLIRender: `storage serve` wires image transformation from its environment: the size
// limits (IMAGE_TRANSFORMATION_LIMIT_MAX_SIZE), the variant cache (IMAGE_TRANSFORMATION_CACHE,
// here off: nothing is kept under render/ in the store), the rate limiter (RATE_LIMITER_*),
// and IMAGE_TRANSFORMATION_ENABLED=false turning the routes into the 404 of unknown routes.
func TestCLIRender(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	dataDir := filepath.Join(cliTempDir(t), "data")
	blobs := filepath.Join(dataDir, "blobs")
	base := []string{"STORAGE_DATA_DIR=" + dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT=" + cliFreePort(t),
		"STORAGE_BACKEND=file", "STORAGE_FILE_BACKEND_PATH=" + blobs}
	s := cliServe(t, bin, dataDir, cliEnv(append(base, "IMAGE_TRANSFORMATION_ENABLED=", "IMAGE_TRANSFORMATION_LIMIT_MAX_SIZE=30",
		"IMAGE_TRANSFORMATION_CACHE=false", "RATE_LIMITER_ENABLED=true", "RATE_LIMITER_RENDER_PATH_MAX_REQ_SEC=1")...))
	s.waitReady()
	code, body := cliRcDo(t, http.MethodPost, s.url+"/bucket", s.service, "application/json", []byte(`{"name":"pb","public":true}`))
	require.Equal(t, http.StatusOK, code, "%s", body)
	code, body = cliRcDo(t, http.MethodPost, s.url+"/object/pb/a.png", s.service, "image/png", []byte(redBluePNG(t, 80, 40)))
	require.Equal(t, http.StatusOK, code, "%s", body)

	path := s.url + "/render/image/public/pb/a.png?width=500"
	for i := range 4 {
		resp, err := httpClient.Get(path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d", i+1)
		require.Equal(t, "width:30,resizing_type:fill", resp.Header.Get("X-Transformations"), "clamped to the configured maximum")
	}
	code, body = cliRcDo(t, http.MethodGet, path, "", "", nil)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.JSONEq(t, `{"statusCode":"429","error":"Too Many Requests","code":"SlowDown","message":"Rate limit exceeded, retry in 4 seconds"}`, string(body))
	_, err := os.Stat(filepath.Join(blobs, "render"))
	require.ErrorIs(t, err, os.ErrNotExist, "IMAGE_TRANSFORMATION_CACHE=false keeps no variant")
	require.Equal(t, 0, s.stop(syscall.SIGTERM), "exit code after SIGTERM")

	s2 := cliServe(t, bin, dataDir, cliEnv(append(base, "IMAGE_TRANSFORMATION_ENABLED=false")...))
	s2.waitReady()
	code, body = cliRcDo(t, http.MethodGet, s2.url+"/render/image/public/pb/a.png?width=1", "", "", nil)
	require.Equal(t, http.StatusNotFound, code)
	require.JSONEq(t, `{"statusCode":"404","code":"InvalidRequest","error":"Not Found","message":"Route GET:/render/image/public/pb/a.png?width=1 not found"}`, string(body))
	require.Equal(t, 0, s2.stop(syscall.SIGTERM), "exit code after SIGTERM")
}
