package tests

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
)

// cliS3Client is an AWS SDK S3 client of a running `storage serve`.
func cliS3Client(base, region, key, secret, token string) *s3.Client {
	return s3.New(s3.Options{BaseEndpoint: aws.String(base + "/s3"), Region: region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, token)})
}

// TestCLIS3: `storage serve` wires the S3 protocol from its environment: the key pair
// (S3_PROTOCOL_ACCESS_KEY_ID/_SECRET), REGION (what GetBucketLocation answers and signatures
// may name), session tokens with PROJECT_REF as access key id and, with ANON_KEY unset, the
// anon key `storage keys` prints as secret; S3_PROTOCOL_ENABLED=false takes /s3 away.
func TestCLIS3(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	ctx := context.Background()
	dataDir := filepath.Join(cliTempDir(t), "data")
	base := []string{"STORAGE_DATA_DIR=" + dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT=" + cliFreePort(t),
		"STORAGE_BACKEND=file", "STORAGE_FILE_BACKEND_PATH=", "S3_PROTOCOL_ENFORCE_REGION=", "S3_PROTOCOL_PREFIX=",
		"SERVICE_KEY=", "ANON_KEY=", "TENANT_ID=", "S3_ALLOW_FORWARDED_HEADER=", "S3_PROTOCOL_NON_CANONICAL_HOST_HEADER=",
		"STORAGE_PUBLIC_URL="}
	env := cliEnv(append(base, "S3_PROTOCOL_ACCESS_KEY_ID=cli-key", "S3_PROTOCOL_ACCESS_KEY_SECRET=cli-secret",
		"REGION=eu-central-1", "PROJECT_REF=cli-project", "S3_PROTOCOL_ENABLED=")...)

	s := cliServe(t, bin, dataDir, env)
	s.waitReady()
	keyPair := cliS3Client(s.url, "eu-central-1", "cli-key", "cli-secret", "")
	_, err := keyPair.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("cli")})
	require.NoError(t, err)
	loc, err := keyPair.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("cli")})
	require.NoError(t, err)
	require.Equal(t, "eu-central-1", string(loc.LocationConstraint))
	_, err = keyPair.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cli"), Key: aws.String("a.txt"),
		Body: strings.NewReader("from the key pair"), ContentType: aws.String("text/plain")})
	require.NoError(t, err)

	// Session tokens: the access key id is PROJECT_REF, the secret the anon key of
	// `storage keys`, the token a JWT (here the service key).
	session := cliS3Client(s.url, "eu-central-1", "cli-project", s.anon, s.service)
	got, err := session.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("cli"), Key: aws.String("a.txt")})
	require.NoError(t, err)
	b, err := io.ReadAll(got.Body)
	require.NoError(t, err)
	require.Equal(t, "from the key pair", string(b))
	_, err = cliS3Client(s.url, "eu-central-1", "storage-single-tenant", s.anon, s.service).
		ListBuckets(ctx, &s3.ListBucketsInput{})
	require.ErrorContains(t, err, "Invalid Access Key", "the default tenant id answers once PROJECT_REF is set")

	// The same object over REST.
	code, body := cliRcDo(t, http.MethodGet, s.url+"/object/cli/a.txt", s.service, "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "from the key pair", string(body))
	require.Equal(t, 0, s.stop(syscall.SIGTERM), "exit code after SIGTERM")

	// Turned off: /s3 is one more unknown route.
	s2 := cliServe(t, bin, dataDir, cliEnv(append(base, "S3_PROTOCOL_ENABLED=false", "S3_PROTOCOL_ACCESS_KEY_ID=cli-key",
		"S3_PROTOCOL_ACCESS_KEY_SECRET=cli-secret", "REGION=", "PROJECT_REF=")...))
	s2.waitReady()
	resp, err := httpClient.Get(s2.url + "/s3/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.JSONEq(t, `{"statusCode":"404","code":"InvalidRequest","error":"Not Found","message":"Route GET:/s3/ not found"}`, string(bytes.TrimSpace(body)))
	require.Equal(t, 0, s2.stop(syscall.SIGTERM), "exit code after SIGTERM")
}
