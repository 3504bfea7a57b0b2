package tests

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
)

// s3PostForm posts a browser upload form: the presigned fields, then extra fields, then the
// file (last, as browsers send it).
func s3PostForm(t *testing.T, url string, fields map[string]string, extra [][2]string, filename string, file []byte) (int, http.Header, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	for _, kv := range extra {
		require.NoError(t, w.WriteField(kv[0], kv[1]))
	}
	fw, err := w.CreateFormFile("file", filename)
	require.NoError(t, err)
	_, err = fw.Write(file)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	req, err := http.NewRequest("POST", url, &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

// TestS3PostPolicy: browser form uploads (S3.md §2.5, §4.8) with policies made by the AWS SDK's
// own PresignPostObject, in key-pair and session-token mode: the form's conditions are
// enforced (content-length-range too, unlike the reference), ${filename} is replaced by the
// file's name, and every refusal stores nothing.
func TestS3PostPolicy(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ctx := context.Background()
	b.s3Bucket(t, "forms")
	b.s3Bucket(t, "other")
	presign := func(c *awss3.Client, bucket, key string, conditions ...any) (string, map[string]string) {
		p, err := awss3.NewPresignClient(c).PresignPostObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)},
			func(o *awss3.PresignPostOptions) { o.Expires = 5 * time.Minute; o.Conditions = conditions })
		require.NoError(t, err)
		return p.URL, p.Values
	}
	xmlErr := func(resource, code, message string) string {
		return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Resource>` +
			resource + `</Resource><Code>` + code + `</Code><Message>` + message + `</Message></Error>`
	}

	t.Run("upload", func(t *testing.T) {
		url, fields := presign(b.s3Service(), "forms", "hello.txt")
		code, h, body := s3PostForm(t, url, fields, nil, "local-name.txt", []byte("hello from a form"))
		require.Equal(t, 204, code, body)
		require.Equal(t, `"`+md5Hex("hello from a form")+`"`, h.Get("ETag"))
		got, err := b.s3Service().GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("forms"), Key: aws.String("hello.txt")})
		require.NoError(t, err)
		data, _ := io.ReadAll(got.Body)
		require.Equal(t, "hello from a form", string(data))
	})
	t.Run("201 document and ${filename}", func(t *testing.T) {
		url, fields := presign(b.s3Service(), "forms", "uploads/${filename}",
			map[string]string{"success_action_status": "201"}, []any{"starts-with", "$key", "uploads/"})
		fields["key"] = "uploads/${filename}"
		code, _, body := s3PostForm(t, url, fields, [][2]string{{"success_action_status", "201"}}, "photo.jpg", []byte("jpeg"))
		require.Equal(t, 201, code, body)
		require.Equal(t, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><PostResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`+
			`<Location>/forms/uploads/photo.jpg</Location><Bucket>forms</Bucket><Key>uploads/photo.jpg</Key><ETag>"`+md5Hex("jpeg")+`"</ETag></PostResponse>`, body)
		require.True(t, b.objectRow(t, "forms", "uploads/photo.jpg"))
	})
	t.Run("session token", func(t *testing.T) {
		url, fields := presign(b.sdkSession(b.service), "forms", "session.txt")
		require.NotEmpty(t, fields["X-Amz-Security-Token"])
		code, _, body := s3PostForm(t, url, fields, nil, "s.txt", []byte("as the token's role"))
		require.Equal(t, 204, code, body)
		require.True(t, b.objectRow(t, "forms", "session.txt"))
		// anon, without an INSERT policy: the row is refused under RLS.
		url, fields = presign(b.sdkSession(b.anon), "forms", "anon.txt")
		code, _, body = s3PostForm(t, url, fields, nil, "a.txt", []byte("no"))
		require.Equal(t, 403, code)
		require.Equal(t, xmlErr("forms", "AccessDenied", "new row violates row-level security policy"), body)
		require.False(t, b.objectRow(t, "forms", "anon.txt"))
	})

	blobs := b.blobCount(t)
	for _, tc := range []struct {
		name    string
		fields  func() (string, map[string]string)
		extra   [][2]string
		file    string
		code    int
		errCode string
		message string
		key     string
	}{
		{name: "content-length-range exceeded", file: "twelve bytes", code: 413, errCode: "EntityTooLarge",
			message: "The object exceeded the maximum allowed size", key: "big.txt",
			fields: func() (string, map[string]string) {
				return presign(b.s3Service(), "forms", "big.txt", []any{"content-length-range", 1, 10})
			}},
		{name: "content-length-range not reached", file: "1", code: 400, errCode: "EntityTooSmall",
			message: "Your proposed upload is smaller than the minimum allowed size", key: "small.txt",
			fields: func() (string, map[string]string) {
				return presign(b.s3Service(), "forms", "small.txt", []any{"content-length-range", 2, 10})
			}},
		{name: "a field the policy does not cover", file: "x", code: 403, errCode: "AccessDenied",
			message: `Policy condition failed: field "x-amz-meta-extra" is not covered by the policy`, key: "extra.txt",
			extra:  [][2]string{{"x-amz-meta-extra", "1"}},
			fields: func() (string, map[string]string) { return presign(b.s3Service(), "forms", "extra.txt") }},
		{name: "a policy for another bucket", file: "x", code: 403, errCode: "AccessDenied",
			message: `Policy condition failed: "bucket" does not match`, key: "k.txt",
			fields: func() (string, map[string]string) {
				url, f := presign(b.s3Service(), "other", "k.txt")
				return url[:len(url)-len("other")] + "forms", f
			}},
		{name: "the key changed", file: "x", code: 403, errCode: "AccessDenied",
			message: `Policy condition failed: "key" does not match`, key: "changed.txt",
			fields: func() (string, map[string]string) {
				url, f := presign(b.s3Service(), "forms", "signed.txt")
				f["key"] = "changed.txt"
				return url, f
			}},
		{name: "a tampered policy", file: "x", code: 403, errCode: "SignatureDoesNotMatch",
			message: "The request signature we calculated does not match the signature you provided. Check your key and signing method.", key: "t.txt",
			fields: func() (string, map[string]string) {
				url, f := presign(b.s3Service(), "forms", "t.txt")
				for k := range f { // the SDK names it "policy" or "Policy" depending on its version
					if strings.EqualFold(k, "policy") {
						f[k] = f[k][:len(f[k])-4] + "AAA="
					}
				}
				return url, f
			}},
		{name: "no signature", file: "x", code: 400, errCode: "InvalidSignature", message: "Invalid signature format", key: "u.txt",
			fields: func() (string, map[string]string) {
				return b.baseURL + "/s3/forms", map[string]string{"key": "u.txt"}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, fields := tc.fields()
			code, _, body := s3PostForm(t, url, fields, tc.extra, "f.txt", []byte(tc.file))
			require.Equal(t, tc.code, code, body)
			require.Equal(t, xmlErr("forms", tc.errCode, tc.message), body)
			require.False(t, b.objectRow(t, "forms", tc.key))
		})
	}
	// Refusals after the bytes arrived (sizes) leave their blob queued, never a stored object;
	// the others never stored a byte.
	require.LessOrEqual(t, b.blobCount(t)-blobs, 2)
}
