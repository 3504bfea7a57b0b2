package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCLIMetricsAndLog: `storage serve` logs one JSON line per request by default (the id the
// client sent among its fields) and serves /metrics on the API's port; METRICS_ADDR moves the
// scrape to a listener of its own (the API's /metrics is then its unknown route), and
// LOG_FORMAT=text logs key=value lines.
func TestCLIMetricsAndLog(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	dataDir := filepath.Join(cliTempDir(t), "data")
	base := []string{"STORAGE_DATA_DIR=" + dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT=" + cliFreePort(t)}

	s := cliServe(t, bin, dataDir, cliEnv(base...))
	s.waitReady()
	req, err := http.NewRequest(http.MethodGet, s.url+"/version", nil)
	require.NoError(t, err)
	req.Header.Set("X-Request-Id", "cli-req-1")
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "cli-req-1", resp.Header.Get("X-Request-Id"))
	code, body := cliRcDo(t, http.MethodGet, s.url+"/metrics", "", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `storage_http_requests_total{operation="storage.version",protocol="rest",status_class="2xx"} 1`)
	require.Contains(t, string(body), `storage_db_pool_max_connections{pool="main"}`)
	require.Contains(t, string(body), `storage_blob_requests_total{backend="file",operation="leftovers"}`, "the store is counted")
	require.Contains(t, string(body), "\nstorage_events_delivered_total 0\n", "the event dispatcher is there (no webhook: nothing delivered)")
	require.Contains(t, string(body), `storage_collector_runs_total{result="led"}`)
	require.Equal(t, 0, s.stop(syscall.SIGTERM))
	var found bool
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue // the embedded cluster's own lines
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["request_id"] == "cli-req-1" {
			found = true
			require.Equal(t, "storage.version", m["operation"], line)
		}
	}
	require.True(t, found, "no JSON line for the request:\n%s", s.stderr.String())

	metricsAddr := "127.0.0.1:" + cliFreePort(t)
	s = cliServe(t, bin, dataDir, cliEnv(append(base, "METRICS_ADDR="+metricsAddr, "LOG_FORMAT=text")...))
	s.waitReady()
	code, _ = cliRcDo(t, http.MethodGet, s.url+"/metrics", "", "", nil)
	require.Equal(t, http.StatusNotFound, code, "the scrape moved off the API's port")
	resp, err = httpClient.Get("http://" + metricsAddr + "/metrics")
	require.NoError(t, err)
	scraped, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(scraped), `storage_http_requests_total{operation="storage.unmatched",protocol="rest",status_class="4xx"} 1`)
	require.Equal(t, 0, s.stop(syscall.SIGTERM))
	require.Regexp(t, `level=INFO msg=request request_id=\S+ method=GET path=/metrics operation=storage.unmatched protocol=rest status=404 `, s.stderr.String())
}
