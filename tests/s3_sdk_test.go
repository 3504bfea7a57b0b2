package tests

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	s3door "github.com/pgstorage/storage/s3"
)

// The S3 door driven by the real AWS SDK for Go (aws-sdk-go-v2's S3 client, path style, the
// door as its endpoint), as aws, rclone and the other SDK-based tools drive it: every part-1
// operation with the server's key pair, then under RLS with a session token, across protocols
// (S3 ↔ REST ↔ SQL), and the refusals, each of which must store nothing. Every case runs on
// both blob backends, each on its own server, database and store. The SDK sends what it sends
// (its payload hashes, its checksum headers, its encodings); nothing is pre-shaped for the
// server.

// ---------------------------------------------------------------------------------------------
// Helpers.

// s3Client is an SDK client of the bundle's S3 door signing with key and secret, plus token
// as the session token when not empty. It never retries: each assertion sees the first answer.
func (b *httpBundle) s3Client(key, secret, token string) *awss3.Client {
	return awss3.New(awss3.Options{
		Region:       s3TestRegion,
		BaseEndpoint: aws.String(b.baseURL + "/s3"),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   httpClient,
	})
}

// s3Service signs with the server-wide key pair: requests run as the service role.
func (b *httpBundle) s3Service() *awss3.Client {
	return b.s3Client(s3TestAccessKey, s3TestSecretKey, "")
}

// sdkSession signs in session-token mode: requests run as the JWT token, under RLS.
func (b *httpBundle) sdkSession(token string) *awss3.Client {
	return b.s3Client(s3door.DefaultTenantID, b.anon, token)
}

// s3Failure is an S3 error answer as a client sees it.
type s3Failure struct {
	Status  int
	Code    string
	Message string
}

// sdkFailure reads the status line, code and message of an SDK call's error.
func sdkFailure(t *testing.T, err error) s3Failure {
	t.Helper()
	require.Error(t, err)
	var re *awshttp.ResponseError
	require.True(t, errors.As(err, &re), "not an HTTP response error: %v", err)
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "not an API error: %v", err)
	return s3Failure{re.HTTPStatusCode(), ae.ErrorCode(), ae.ErrorMessage()}
}

// requireS3Error asserts an SDK call failed with exactly this status, code and message.
func requireSDKError(t *testing.T, err error, want s3Failure) {
	t.Helper()
	require.Equal(t, want, sdkFailure(t, err), "%v", err)
}

// The S3 errors many cases expect (S3.md §3.2; HEAD answers and 304s carry no body, so the
// SDK names them after the status).
var (
	s3NoSuchKey     = s3Failure{404, "NoSuchKey", "Object not found"}
	s3NoSuchBucket  = s3Failure{404, "NoSuchBucket", "Bucket not found"}
	s3HeadNotFound  = s3Failure{404, "NotFound", ""}
	s3NotModified   = s3Failure{304, "NotModified", "Not Modified"}
	s3Precondition  = s3Failure{412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"}
	s3RLSRefused    = s3Failure{403, "AccessDenied", "new row violates row-level security policy"}
	s3DeleteRefused = s3Failure{403, "AccessDenied", "Access denied"}
)

// s3Put uploads body to bucket/key and asserts the ETag the answer carries.
func s3Put(t *testing.T, c *awss3.Client, bucket, key string, body []byte) {
	t.Helper()
	out, err := c.PutObject(context.Background(), &awss3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	require.NoError(t, err, "PutObject %s/%s", bucket, key)
	require.Equal(t, quotedMD5(string(body)), aws.ToString(out.ETag))
}

// s3Get downloads bucket/key whole.
func s3Get(t *testing.T, c *awss3.Client, bucket, key string) (*awss3.GetObjectOutput, []byte) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	require.NoError(t, err, "GetObject %s/%s", bucket, key)
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	require.NoError(t, err)
	return out, data
}

// rowCount is the number of rows bucket/name has in storage.objects (0 or 1).
func (o *objEnv) rowCount(t *testing.T, bucket, name string) int {
	t.Helper()
	return len(o.column(t, `select name from storage.objects where bucket_id = $1 and name = $2`, bucket, name))
}

// rowLastModified is what S3 reports as the object's Last-Modified: the metadata's, to the
// second (HTTP dates have no fraction).
func (o *objEnv) rowLastModified(t *testing.T, bucket, name string) time.Time {
	t.Helper()
	v := o.row(t, bucket, name, `metadata->>'lastModified'`)
	lm, err := time.Parse(time.RFC3339Nano, v)
	require.NoError(t, err, "metadata.lastModified %q", v)
	return lm.Truncate(time.Second).UTC()
}

// listAllV2 walks a ListObjectsV2 listing with the SDK's paginator and returns the keys and
// the size of every page.
func listAllV2(t *testing.T, c *awss3.Client, in *awss3.ListObjectsV2Input) (keys []string, pageSizes []int) {
	t.Helper()
	pages := awss3.NewListObjectsV2Paginator(c, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		require.NoError(t, err)
		require.Equal(t, int32(len(page.Contents)+len(page.CommonPrefixes)), aws.ToInt32(page.KeyCount))
		require.Equal(t, page.NextContinuationToken != nil, aws.ToBool(page.IsTruncated))
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		pageSizes = append(pageSizes, len(page.Contents))
	}
	return keys, pageSizes
}

func contentKeys(objs []s3types.Object) []string {
	keys := []string{}
	for _, o := range objs {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func prefixKeys(ps []s3types.CommonPrefix) []string {
	keys := []string{}
	for _, p := range ps {
		keys = append(keys, aws.ToString(p.Prefix))
	}
	return keys
}

// ---------------------------------------------------------------------------------------------
// 1. The server's key pair: every part-1 operation.

func TestS3SDKKeyPair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "Buckets", func(t *testing.T, o *objEnv) {
			c := o.s3Service()
			_, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("plain")})
			require.NoError(t, err)
			_, err = c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("pub"), ACL: s3types.BucketCannedACLPublicRead})
			require.NoError(t, err)
			// A location constraint travels as an XML body (its SHA-256 signed); there is one
			// region, so it is read and ignored.
			_, err = c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("conf"),
				CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraintEuWest1}})
			require.NoError(t, err)
			require.Equal(t, []string{"b false", "conf false", "plain false", "pub true"},
				o.column(t, `select id || ' ' || public::text from storage.buckets order by id`))
			_, err = c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("plain")})
			requireSDKError(t, err, s3Failure{409, "BucketAlreadyExists", "The resource already exists"})

			hb, err := c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("plain")})
			require.NoError(t, err)
			require.Equal(t, s3TestRegion, aws.ToString(hb.BucketRegion))
			_, err = c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("nope")})
			requireSDKError(t, err, s3HeadNotFound)

			loc, err := c.GetBucketLocation(ctx, &awss3.GetBucketLocationInput{Bucket: aws.String("plain")})
			require.NoError(t, err)
			require.Equal(t, s3types.BucketLocationConstraint(s3TestRegion), loc.LocationConstraint)
			_, err = c.GetBucketLocation(ctx, &awss3.GetBucketLocationInput{Bucket: aws.String("nope")})
			requireSDKError(t, err, s3NoSuchBucket)

			ver, err := c.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: aws.String("pub")})
			require.NoError(t, err)
			require.Equal(t, s3types.BucketVersioningStatusSuspended, ver.Status)
			require.Equal(t, s3types.MFADeleteStatusDisabled, ver.MFADelete)

			list, err := c.ListBuckets(ctx, &awss3.ListBucketsInput{})
			require.NoError(t, err)
			var got []string
			for _, b := range list.Buckets {
				got = append(got, aws.ToString(b.Name)+" "+b.CreationDate.UTC().Format("2006-01-02T15:04:05.000Z"))
			}
			require.Equal(t, o.column(t, `select id || ' ' || to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
				from storage.buckets order by id collate "C"`), got)

			// A bucket with an object cannot go; empty, it can.
			s3Put(t, c, "plain", "k", []byte("x"))
			_, err = c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("plain")})
			requireSDKError(t, err, s3Failure{409, "ResourceNotEmpty", "The bucket you tried to delete is not empty"})
			require.Equal(t, 1, o.rowCount(t, "plain", "k"))
			_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("plain"), Key: aws.String("k")})
			require.NoError(t, err)
			_, err = c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("plain")})
			require.NoError(t, err)
			require.Equal(t, []string{"b", "conf", "pub"}, o.column(t, `select id from storage.buckets order by id`))
			_, err = c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("plain")})
			requireSDKError(t, err, s3HeadNotFound)
			_, err = c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("plain")})
			requireSDKError(t, err, s3NoSuchBucket)
		})

		be.run(t, "PutHeadGet", func(t *testing.T, o *objEnv) {
			c := o.s3Service()
			meta := map[string]string{"color": "blue", "owner-name": "Ada Lovelace"}
			for _, size := range []int{0, 1 << 10, 5 << 20} {
				key := fmt.Sprintf("sized/%d.bin", size)
				data := randomBytes(t, size)
				put, err := c.PutObject(ctx, &awss3.PutObjectInput{
					Bucket: aws.String("b"), Key: aws.String(key), Body: bytes.NewReader(data),
					ContentType: aws.String("application/x-test"), CacheControl: aws.String("max-age=600"),
					Metadata: meta,
				})
				require.NoError(t, err, "PutObject of %d bytes", size)
				etag := quotedMD5(string(data))
				require.Equal(t, etag, aws.ToString(put.ETag))
				require.Equal(t, fmt.Sprintf(`%s %d application/x-test max-age=600 {"color": "blue", "owner-name": "Ada Lovelace"}`, etag, size),
					o.row(t, "b", key, `metadata->>'eTag' || ' ' || (metadata->>'size') || ' ' || (metadata->>'mimetype') || ' '
						|| (metadata->>'cacheControl') || ' ' || user_metadata::text`))

				head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String(key)})
				require.NoError(t, err)
				require.Equal(t, int64(size), aws.ToInt64(head.ContentLength))
				require.Equal(t, "application/x-test", aws.ToString(head.ContentType))
				require.Equal(t, "max-age=600", aws.ToString(head.CacheControl))
				require.Equal(t, etag, aws.ToString(head.ETag))
				require.Equal(t, meta, head.Metadata)
				require.Equal(t, o.rowLastModified(t, "b", key), head.LastModified.UTC())

				get, got := s3Get(t, c, "b", key)
				require.True(t, bytes.Equal(data, got), "GetObject of %d bytes returned other bytes", size)
				require.Equal(t, int64(size), aws.ToInt64(get.ContentLength))
				require.Equal(t, "application/x-test", aws.ToString(get.ContentType))
				require.Equal(t, "max-age=600", aws.ToString(get.CacheControl))
				require.Equal(t, etag, aws.ToString(get.ETag))
				require.Equal(t, meta, get.Metadata)
				require.Equal(t, o.rowLastModified(t, "b", key), get.LastModified.UTC())
			}
			// What S3 has and storage does not (ACLs, tags, storage classes, the headers a
			// download would replay) is accepted and not stored; a checksum the SDK computes is
			// sent along.
			extra := randomBytes(t, 10<<10)
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("extras.bin"), Body: bytes.NewReader(extra),
				ACL: s3types.ObjectCannedACLPrivate, Tagging: aws.String("a=b"), StorageClass: s3types.StorageClassStandard,
				ContentDisposition: aws.String("inline"), ContentLanguage: aws.String("en"), Expires: aws.Time(time.Now().Add(time.Hour)),
				ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
			require.NoError(t, err)
			extraGet, got := s3Get(t, c, "b", "extras.bin")
			require.True(t, bytes.Equal(extra, got), "GetObject returned other bytes")
			require.Empty(t, extraGet.ContentDisposition)
			require.Empty(t, extraGet.ContentLanguage)
			require.Equal(t, "{}", o.row(t, "b", "extras.bin", `user_metadata::text`))

			key := "sized/5242880.bin"
			etag := o.row(t, "b", key, `metadata->>'eTag'`)
			whole, data := s3Get(t, c, "b", key) // the 5 MiB object
			require.Equal(t, etag, aws.ToString(whole.ETag))
			require.Len(t, data, 5<<20)

			// Range.
			rng, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Range: aws.String("bytes=1000-1999")})
			require.NoError(t, err)
			part, err := io.ReadAll(rng.Body)
			require.NoError(t, err)
			require.NoError(t, rng.Body.Close())
			require.True(t, bytes.Equal(data[1000:2000], part), "ranged GetObject returned other bytes")
			require.Equal(t, "bytes 1000-1999/5242880", aws.ToString(rng.ContentRange))
			require.Equal(t, int64(1000), aws.ToInt64(rng.ContentLength))
			tail, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Range: aws.String("bytes=-10")})
			require.NoError(t, err)
			part, err = io.ReadAll(tail.Body)
			require.NoError(t, err)
			require.NoError(t, tail.Body.Close())
			require.True(t, bytes.Equal(data[len(data)-10:], part))
			require.Equal(t, "bytes 5242870-5242879/5242880", aws.ToString(tail.ContentRange))

			_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Range: aws.String("bytes=5242880-")})
			requireSDKError(t, err, s3Failure{416, "InvalidRange", "invalid range provided"})

			// Conditionals.
			_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key), IfNoneMatch: aws.String(etag)})
			requireSDKError(t, err, s3NotModified)
			_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key), IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
			requireSDKError(t, err, s3Precondition)
			match, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key), IfMatch: aws.String(etag),
				IfNoneMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
			require.NoError(t, err)
			got, err = io.ReadAll(match.Body)
			require.NoError(t, err)
			require.NoError(t, match.Body.Close())
			require.True(t, bytes.Equal(data, got))

			// response-* overrides.
			expires := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			ov, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("sized/1024.bin"),
				ResponseContentType: aws.String("text/plain; charset=utf-8"), ResponseContentDisposition: aws.String(`attachment; filename="report 1.bin"`),
				ResponseExpires: aws.Time(expires), ResponseCacheControl: aws.String("no-store")})
			require.NoError(t, err)
			got, err = io.ReadAll(ov.Body)
			require.NoError(t, err)
			require.NoError(t, ov.Body.Close())
			require.Len(t, got, 1<<10)
			require.Equal(t, "text/plain; charset=utf-8", aws.ToString(ov.ContentType))
			require.Equal(t, `attachment; filename="report 1.bin"`, aws.ToString(ov.ContentDisposition))
			require.Equal(t, "no-store", aws.ToString(ov.CacheControl))
			require.Equal(t, "Tue, 01 Jan 2030 00:00:00 GMT", aws.ToString(ov.ExpiresString))

			// Tagging: the object's, always empty.
			tags, err := c.GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: aws.String("b"), Key: aws.String(key)})
			require.NoError(t, err)
			require.Empty(t, tags.TagSet)
			require.NotNil(t, tags.TagSet)
			_, err = c.GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: aws.String("b"), Key: aws.String("missing")})
			requireSDKError(t, err, s3NoSuchKey)

			// Missing.
			_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("missing")})
			requireSDKError(t, err, s3NoSuchKey)
			_, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("missing")})
			requireSDKError(t, err, s3HeadNotFound)
			_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("nope"), Key: aws.String(key)})
			requireSDKError(t, err, s3NoSuchKey)
			o.requireBlobsAccounted(t)
		})

		be.run(t, "KeyCharset", func(t *testing.T, o *objEnv) {
			// Every character the storage key charset allows, through the SDK's path encoding,
			// a copy source, a listing and the DeleteObjects document.
			c := o.s3Service()
			key := "set/all !-.*'()&$=@;:+,?_ end/" + "k"
			data := []byte("every allowed character")
			s3Put(t, c, "b", key, data)
			require.Equal(t, 1, o.rowCount(t, "b", key))
			_, got := s3Get(t, c, "b", key)
			require.Equal(t, data, got)
			_, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String(key)})
			require.NoError(t, err)
			copied := key + " copy"
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String(copied),
				CopySource: aws.String("b/" + url.PathEscape(key))})
			require.NoError(t, err)
			page, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), Prefix: aws.String("set/all !-.*'()&$=@;:+,?_ end/")})
			require.NoError(t, err)
			require.Equal(t, []string{key, copied}, contentKeys(page.Contents))
			page, err = c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), Prefix: aws.String("set/"), Delimiter: aws.String("/"),
				EncodingType: s3types.EncodingTypeUrl})
			require.NoError(t, err)
			require.Equal(t, []string{"set%2Fall%20!-.*'()%26%24%3D%40%3B%3A%2B%2C%3F_%20end%2F"}, prefixKeys(page.CommonPrefixes))
			out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("b"), Delete: &s3types.Delete{
				Objects: []s3types.ObjectIdentifier{{Key: aws.String(key)}, {Key: aws.String(copied)}}}})
			require.NoError(t, err)
			require.Empty(t, out.Errors)
			require.Len(t, out.Deleted, 2)
			require.Empty(t, o.objectNames(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "Presigned", func(t *testing.T, o *objEnv) {
			// The SDK's presigner: a PUT and a GET anyone holding the URL may send.
			ps := awss3.NewPresignClient(o.s3Service())
			key := "shared/presigned file.bin"
			put, err := ps.PresignPutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key)},
				awss3.WithPresignExpires(5*time.Minute))
			require.NoError(t, err)
			require.Equal(t, http.MethodPut, put.Method)
			data := randomBytes(t, 300<<10)
			req, err := http.NewRequest(put.Method, put.URL, bytes.NewReader(data))
			require.NoError(t, err)
			req.Header = put.SignedHeader.Clone()
			resp, err := httpClient.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, quotedMD5(string(data)), resp.Header.Get("ETag"))

			get, err := ps.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key),
				ResponseContentDisposition: aws.String("attachment")}, awss3.WithPresignExpires(5*time.Minute))
			require.NoError(t, err)
			r := o.get(t, strings.TrimPrefix(get.URL, o.baseURL), "")
			require.Equal(t, http.StatusOK, r.Status, "presigned GET: %s", r)
			require.True(t, bytes.Equal(data, r.Body), "presigned GET returned other bytes")
			require.Equal(t, "attachment", r.Header.Get("Content-Disposition"))
			// The signature covers the query: another override is refused.
			r = o.get(t, strings.Replace(strings.TrimPrefix(get.URL, o.baseURL), "attachment", "inline", 1), "")
			require.Equal(t, s3Failure{403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method."},
				s3ErrorOf(t, r))
		})

		be.run(t, "Copy", func(t *testing.T, o *objEnv) {
			c := o.s3Service()
			src := "dir/a file+plus.txt"
			data := randomBytes(t, 4<<10)
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(src), Body: bytes.NewReader(data),
				ContentType: aws.String("text/plain"), CacheControl: aws.String("max-age=60"), Metadata: map[string]string{"k": "v"}})
			require.NoError(t, err)
			etag := quotedMD5(string(data))
			// x-amz-copy-source is URL-encoded (AWS's documentation); the key's '/' may travel
			// encoded or not, and '+' is a plus either way.
			for _, source := range []struct{ name, header string }{
				{"PathEscape", "b/" + url.PathEscape(src)}, // b/dir%2Fa%20file+plus.txt
				{"SegmentsEscaped", "/b/dir/a%20file%2Bplus.txt"},
				{"EverythingEscaped", "b/" + percentEncodeAll(src)},
			} {
				dst := "copies/" + source.name + ".txt"
				out, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String(dst), CopySource: aws.String(source.header)})
				require.NoError(t, err, "copy source %s", source.header)
				require.Equal(t, etag, aws.ToString(out.CopyObjectResult.ETag))
				require.Equal(t, o.row(t, "b", dst, `to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`),
					out.CopyObjectResult.LastModified.UTC().Format("2006-01-02T15:04:05.000Z"))
				// COPY (the default directive) keeps the source's metadata.
				head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String(dst)})
				require.NoError(t, err)
				require.Equal(t, "text/plain", aws.ToString(head.ContentType))
				require.Equal(t, "max-age=60", aws.ToString(head.CacheControl))
				require.Equal(t, map[string]string{"k": "v"}, head.Metadata)
				require.Equal(t, int64(len(data)), aws.ToInt64(head.ContentLength))
				require.Equal(t, etag, aws.ToString(head.ETag))
				_, got := s3Get(t, c, "b", dst)
				require.True(t, bytes.Equal(data, got), "copy %s holds other bytes", dst)
			}

			// REPLACE takes the request's metadata instead.
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("copies/replaced.txt"),
				CopySource: aws.String("b/" + url.PathEscape(src)), MetadataDirective: s3types.MetadataDirectiveReplace,
				ContentType: aws.String("application/json"), CacheControl: aws.String("no-store"), Metadata: map[string]string{"n": "2"}})
			require.NoError(t, err)
			get, got := s3Get(t, c, "b", "copies/replaced.txt")
			require.True(t, bytes.Equal(data, got))
			require.Equal(t, "application/json", aws.ToString(get.ContentType))
			require.Equal(t, "no-store", aws.ToString(get.CacheControl))
			require.Equal(t, map[string]string{"n": "2"}, get.Metadata)
			require.Equal(t, `{"n": "2"}`, o.row(t, "b", "copies/replaced.txt", `user_metadata::text`))

			// Onto itself with REPLACE: the way S3 tools change an object's metadata in place.
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("copies/replaced.txt"),
				CopySource: aws.String("b/copies/replaced.txt"), MetadataDirective: s3types.MetadataDirectiveReplace,
				ContentType: aws.String("text/markdown"), Metadata: map[string]string{"n": "3"}})
			require.NoError(t, err)
			get, got = s3Get(t, c, "b", "copies/replaced.txt")
			require.True(t, bytes.Equal(data, got))
			require.Equal(t, "text/markdown", aws.ToString(get.ContentType))
			require.Equal(t, map[string]string{"n": "3"}, get.Metadata)

			// A copy over an existing key replaces it (S3 always overwrites).
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("copies/replaced.txt"),
				CopySource: aws.String("b/copies/PathEscape.txt")})
			require.NoError(t, err)
			require.Equal(t, `{"k": "v"} text/plain`, o.row(t, "b", "copies/replaced.txt", `user_metadata::text || ' ' || (metadata->>'mimetype')`))

			// x-amz-copy-source-if-match.
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("copies/if-match.txt"),
				CopySource: aws.String("b/" + url.PathEscape(src)), CopySourceIfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
			requireSDKError(t, err, s3Precondition)
			require.Equal(t, 0, o.rowCount(t, "b", "copies/if-match.txt"))
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("copies/if-match.txt"),
				CopySource: aws.String("b/" + url.PathEscape(src)), CopySourceIfMatch: aws.String(etag)})
			require.NoError(t, err)
			require.Equal(t, 1, o.rowCount(t, "b", "copies/if-match.txt"))

			// Missing source, missing destination bucket.
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("copies/none.txt"),
				CopySource: aws.String("b/missing.txt")})
			requireSDKError(t, err, s3NoSuchKey)
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("nope"), Key: aws.String("copies/none.txt"),
				CopySource: aws.String("b/" + url.PathEscape(src))})
			requireSDKError(t, err, s3NoSuchBucket)
			require.Equal(t, 0, o.rowCount(t, "b", "copies/none.txt"))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "Delete", func(t *testing.T, o *objEnv) {
			c := o.s3Service()
			for _, k := range []string{"one", "x1", "x/2", "y1", "y 2+", "keep"} {
				s3Put(t, c, "b", k, []byte("content of "+k))
			}
			_, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String("one")})
			require.NoError(t, err)
			require.Equal(t, 0, o.rowCount(t, "b", "one"))
			_, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("one")})
			requireSDKError(t, err, s3HeadNotFound)
			// Deleting what is not there succeeds (S3 deletes are idempotent), in an existing bucket.
			_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String("one")})
			require.NoError(t, err)
			_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("nope"), Key: aws.String("one")})
			requireSDKError(t, err, s3NoSuchBucket)

			del := func(quiet bool, keys ...string) *awss3.DeleteObjectsOutput {
				t.Helper()
				var ids []s3types.ObjectIdentifier
				for _, k := range keys {
					ids = append(ids, s3types.ObjectIdentifier{Key: aws.String(k)})
				}
				out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("b"),
					Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(quiet)}})
				require.NoError(t, err)
				require.Empty(t, out.Errors)
				return out
			}
			out := del(false, "x1", "x/2", "missing")
			var deleted []string
			for _, d := range out.Deleted {
				deleted = append(deleted, aws.ToString(d.Key))
			}
			require.Equal(t, []string{"x1", "x/2", "missing"}, deleted)
			out = del(true, "y1", "y 2+")
			require.Empty(t, out.Deleted)
			require.Equal(t, []string{"b/keep"}, o.objectNames(t))
			_, got := s3Get(t, c, "b", "keep")
			require.Equal(t, "content of keep", string(got))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "List", func(t *testing.T, o *objEnv) {
			c := o.s3Service()
			all := []string{"a.txt", "dir/1.txt", "dir/2.txt", "dir/sub/3.txt", "e f+g.txt"}
			for i := range 20 {
				all = append(all, fmt.Sprintf("p/%02d", i))
			}
			for _, k := range all {
				s3Put(t, c, "b", k, []byte(k))
			}
			slices.Sort(all)
			require.Len(t, all, 25)

			// The SDK's paginator, 4 keys a page.
			keys, sizes := listAllV2(t, c, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), MaxKeys: aws.Int32(4)})
			require.Equal(t, all, keys)
			require.Equal(t, []int{4, 4, 4, 4, 4, 4, 1}, sizes)
			keys, sizes = listAllV2(t, c, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), MaxKeys: aws.Int32(4), Prefix: aws.String("p/")})
			require.Equal(t, all[5:], keys)
			require.Equal(t, []int{4, 4, 4, 4, 4}, sizes)

			// One page, every field.
			page, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), Prefix: aws.String("dir/"), Delimiter: aws.String("/")})
			require.NoError(t, err)
			require.Equal(t, "b", aws.ToString(page.Name))
			require.Equal(t, "dir/", aws.ToString(page.Prefix))
			require.Equal(t, "/", aws.ToString(page.Delimiter))
			require.Equal(t, int32(1000), aws.ToInt32(page.MaxKeys))
			require.Equal(t, int32(3), aws.ToInt32(page.KeyCount))
			require.False(t, aws.ToBool(page.IsTruncated))
			require.Nil(t, page.NextContinuationToken)
			require.Equal(t, []string{"dir/1.txt", "dir/2.txt"}, contentKeys(page.Contents))
			require.Equal(t, []string{"dir/sub/"}, prefixKeys(page.CommonPrefixes))
			for _, obj := range page.Contents {
				k := aws.ToString(obj.Key)
				require.Equal(t, quotedMD5(k), aws.ToString(obj.ETag))
				require.Equal(t, int64(len(k)), aws.ToInt64(obj.Size))
				require.Equal(t, s3types.ObjectStorageClassStandard, obj.StorageClass)
				require.Equal(t, o.row(t, "b", k, `to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`),
					obj.LastModified.UTC().Format("2006-01-02T15:04:05.000Z"))
			}

			// Delimiter at the top, common prefixes interleaved and paged like keys.
			keys, prefixes := []string{}, []string{}
			pages := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)})
			n := 0
			for pages.HasMorePages() {
				p, err := pages.NextPage(ctx)
				require.NoError(t, err)
				require.Equal(t, int32(1), aws.ToInt32(p.KeyCount))
				keys = append(keys, contentKeys(p.Contents)...)
				prefixes = append(prefixes, prefixKeys(p.CommonPrefixes)...)
				n++
			}
			require.Equal(t, 4, n)
			require.Equal(t, []string{"a.txt", "e f+g.txt"}, keys)
			require.Equal(t, []string{"dir/", "p/"}, prefixes)

			// StartAfter.
			page, err = c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), StartAfter: aws.String("p/17")})
			require.NoError(t, err)
			require.Equal(t, []string{"p/18", "p/19"}, contentKeys(page.Contents))
			page, err = c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), StartAfter: aws.String("dir/1.txt"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(2)})
			require.NoError(t, err)
			require.Equal(t, []string{"e f+g.txt"}, contentKeys(page.Contents))
			require.Equal(t, []string{"dir/"}, prefixKeys(page.CommonPrefixes))
			require.True(t, aws.ToBool(page.IsTruncated))

			// EncodingType url: keys and common prefixes come percent-encoded (the SDK does not
			// decode them).
			page, err = c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), EncodingType: s3types.EncodingTypeUrl,
				Delimiter: aws.String("/"), MaxKeys: aws.Int32(3)})
			require.NoError(t, err)
			require.Equal(t, s3types.EncodingTypeUrl, page.EncodingType)
			require.Equal(t, []string{"a.txt", "e%20f%2Bg.txt"}, contentKeys(page.Contents))
			require.Equal(t, []string{"dir%2F"}, prefixKeys(page.CommonPrefixes))

			// ListObjects (v1), paged by Marker.
			var v1 []string
			marker := ""
			for pagesV1 := 0; ; pagesV1++ {
				require.Less(t, pagesV1, 10, "ListObjects does not end")
				in := &awss3.ListObjectsInput{Bucket: aws.String("b"), MaxKeys: aws.Int32(10)}
				if marker != "" {
					in.Marker = aws.String(marker)
				}
				out, err := c.ListObjects(ctx, in)
				require.NoError(t, err)
				require.Equal(t, int32(10), aws.ToInt32(out.MaxKeys))
				got := contentKeys(out.Contents)
				v1 = append(v1, got...)
				if !aws.ToBool(out.IsTruncated) {
					require.Nil(t, out.Marker)
					require.Len(t, got, 5)
					break
				}
				require.Len(t, got, 10)
				marker = got[len(got)-1]
				// The reference's Marker carries the next marker (S3.md §5.3).
				require.Equal(t, marker, aws.ToString(out.Marker))
			}
			require.Equal(t, all, v1)
			v1d, err := c.ListObjects(ctx, &awss3.ListObjectsInput{Bucket: aws.String("b"), Delimiter: aws.String("/"), Prefix: aws.String("dir/")})
			require.NoError(t, err)
			require.Equal(t, []string{"dir/1.txt", "dir/2.txt"}, contentKeys(v1d.Contents))
			require.Equal(t, []string{"dir/sub/"}, prefixKeys(v1d.CommonPrefixes))

			_, err = c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("nope")})
			requireSDKError(t, err, s3NoSuchBucket)
		})
	})
}

// ---------------------------------------------------------------------------------------------
// 2. Session-token mode: an authenticated user under RLS, allowed one folder of one bucket.

// ownFolderPolicies let authenticated users read, create, overwrite and delete the objects of
// bucket b under the folder named after their sub, and nothing else.
const ownFolderPolicies = `
	create policy own_select on storage.objects for select to authenticated
	  using (bucket_id = 'b' and (storage.foldername(name))[1] = (select auth.uid())::text);
	create policy own_insert on storage.objects for insert to authenticated
	  with check (bucket_id = 'b' and (storage.foldername(name))[1] = (select auth.uid())::text);
	create policy own_update on storage.objects for update to authenticated
	  using (bucket_id = 'b' and (storage.foldername(name))[1] = (select auth.uid())::text);
	create policy own_delete on storage.objects for delete to authenticated
	  using (bucket_id = 'b' and (storage.foldername(name))[1] = (select auth.uid())::text);`

func TestS3SDKSessionToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "OwnFolder", func(t *testing.T, o *objEnv) {
			admin(t, o.db, ownFolderPolicies)
			svc := o.s3Service()
			theirs, top := userB.Sub+"/secret.txt", "top.txt"
			s3Put(t, svc, "b", theirs, []byte("B's secret"))
			s3Put(t, svc, "b", top, []byte("the service's"))
			c := o.sdkSession(o.userA)
			mine := userA.Sub + "/notes/a.txt"

			// Inside the folder: everything works, and the rows are the user's.
			data := randomBytes(t, 64<<10)
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(mine), Body: bytes.NewReader(data),
				ContentType: aws.String("text/plain"), Metadata: map[string]string{"by": "a"}})
			require.NoError(t, err)
			require.Equal(t, userA.Sub+" "+userA.Sub, o.row(t, "b", mine, `owner_id || ' ' || owner::text`))
			head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String(mine)})
			require.NoError(t, err)
			require.Equal(t, int64(len(data)), aws.ToInt64(head.ContentLength))
			require.Equal(t, quotedMD5(string(data)), aws.ToString(head.ETag))
			require.Equal(t, map[string]string{"by": "a"}, head.Metadata)
			_, got := s3Get(t, c, "b", mine)
			require.True(t, bytes.Equal(data, got), "GetObject returned other bytes")
			// Overwriting one's own object (upsert: INSERT, UPDATE and SELECT policies).
			data = randomBytes(t, 1000)
			_, err = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(mine), Body: bytes.NewReader(data)})
			require.NoError(t, err)
			_, got = s3Get(t, c, "b", mine)
			require.True(t, bytes.Equal(data, got), "GetObject after the overwrite returned other bytes")
			copied := userA.Sub + "/copy.txt"
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String(copied),
				CopySource: aws.String("b/" + url.PathEscape(mine))})
			require.NoError(t, err)
			require.Equal(t, userA.Sub, o.row(t, "b", copied, `owner_id`))
			_, got = s3Get(t, c, "b", copied)
			require.True(t, bytes.Equal(data, got), "the copy holds other bytes")
			page, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b")})
			require.NoError(t, err)
			require.Equal(t, []string{copied, mine}, contentKeys(page.Contents))
			page, err = c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), Delimiter: aws.String("/")})
			require.NoError(t, err)
			require.Empty(t, page.Contents)
			require.Equal(t, []string{userA.Sub + "/"}, prefixKeys(page.CommonPrefixes))
			_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String(copied)})
			require.NoError(t, err)
			require.Equal(t, 0, o.rowCount(t, "b", copied))
			// DeleteObjects: the user's keys go, another's stays and is reported (hidden keys
			// are refused, not claimed deleted).
			s3Put(t, c, "b", copied, []byte("again"))
			many, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("b"), Delete: &s3types.Delete{
				Objects: []s3types.ObjectIdentifier{{Key: aws.String(copied)}, {Key: aws.String(theirs)}, {Key: aws.String(userA.Sub + "/never")}}}})
			require.NoError(t, err)
			var deleted []string
			for _, d := range many.Deleted {
				deleted = append(deleted, aws.ToString(d.Key))
			}
			require.Equal(t, []string{copied, userA.Sub + "/never"}, deleted)
			require.Len(t, many.Errors, 1)
			require.Equal(t, []string{theirs, "AccessDenied", "Access Denied"},
				[]string{aws.ToString(many.Errors[0].Key), aws.ToString(many.Errors[0].Code), aws.ToString(many.Errors[0].Message)})
			require.Equal(t, 0, o.rowCount(t, "b", copied))
			require.Equal(t, 1, o.rowCount(t, "b", theirs))
			// No policy on storage.buckets: the user sees no bucket, yet writes into b (the
			// reference looks buckets up as the service for object operations).
			buckets, err := c.ListBuckets(ctx, &awss3.ListBucketsInput{})
			require.NoError(t, err)
			require.Empty(t, buckets.Buckets)
			_, err = c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("mine")})
			requireSDKError(t, err, s3RLSRefused)
			require.Equal(t, []string{"b"}, o.column(t, `select id from storage.buckets`))

			// Presigned with the session token (X-Amz-Security-Token in the URL): the user's
			// object, and nobody else's.
			ps := awss3.NewPresignClient(c)
			for key, want := range map[string]int{mine: http.StatusOK, theirs: http.StatusNotFound} {
				u, err := ps.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key)}, awss3.WithPresignExpires(time.Minute))
				require.NoError(t, err)
				require.Contains(t, u.URL, "X-Amz-Security-Token=")
				r := o.get(t, strings.TrimPrefix(u.URL, o.baseURL), "")
				if want == http.StatusOK {
					require.Equal(t, want, r.Status, "presigned GET of %s: %s", key, r)
					require.True(t, bytes.Equal(data, r.Body), "presigned GET returned other bytes")
				} else {
					require.Equal(t, s3NoSuchKey, s3ErrorOf(t, r))
				}
			}

			// Outside the folder: refused, and nothing changes.
			for _, key := range []string{"elsewhere.txt", userB.Sub + "/planted.txt", top, theirs} {
				_, err = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: bytes.NewReader([]byte("A's"))})
				requireSDKError(t, err, s3RLSRefused)
			}
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("elsewhere.txt"),
				CopySource: aws.String("b/" + url.PathEscape(mine))})
			requireSDKError(t, err, s3RLSRefused)
			_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String(userA.Sub + "/stolen.txt"),
				CopySource: aws.String("b/" + url.PathEscape(theirs))})
			requireSDKError(t, err, s3NoSuchKey)
			_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(theirs)})
			requireSDKError(t, err, s3NoSuchKey)
			_, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String(top)})
			requireSDKError(t, err, s3HeadNotFound)
			_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String(theirs)})
			requireSDKError(t, err, s3DeleteRefused)
			want := []string{"b/" + mine, "b/" + theirs, "b/" + top}
			slices.Sort(want)
			require.Equal(t, want, o.objectNames(t))
			_, got = s3Get(t, svc, "b", theirs)
			require.Equal(t, "B's secret", string(got))
			_, got = s3Get(t, svc, "b", top)
			require.Equal(t, "the service's", string(got))
			o.requireBlobsAccounted(t)
		})
	})
}

// ---------------------------------------------------------------------------------------------
// 3. Across protocols: one object, whichever door wrote it.

func TestS3SDKCrossProtocol(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "S3ToRESTAndSQL", func(t *testing.T, o *objEnv) {
			c := o.s3Service()
			key := "x/from s3+.bin"
			data := randomBytes(t, 3<<20+17)
			put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: bytes.NewReader(data),
				ContentType: aws.String("image/png"), Metadata: map[string]string{"origin": "s3"}})
			require.NoError(t, err)
			etag := quotedMD5(string(data))
			require.Equal(t, etag, aws.ToString(put.ETag))
			r := o.get(t, "/object/authenticated/b/"+escapeKey(key), o.service)
			require.Equal(t, http.StatusOK, r.Status, "REST download: %s", r)
			require.True(t, bytes.Equal(data, r.Body), "REST download returned other bytes")
			require.Equal(t, etag, r.Header.Get("ETag"))
			require.Equal(t, "image/png", r.Header.Get("Content-Type"))
			require.Equal(t, fmt.Sprintf(`%s %d image/png {"origin": "s3"} <null>`, etag, len(data)),
				o.row(t, "b", key, `metadata->>'eTag' || ' ' || (metadata->>'size') || ' ' || (metadata->>'mimetype') || ' '
					|| user_metadata::text || ' ' || coalesce(owner_id, '<null>')`))
			info := o.info(t, "b", key)
			require.Equal(t, map[string]any{"origin": "s3"}, info["metadata"])
		})

		be.run(t, "RESTToS3", func(t *testing.T, o *objEnv) {
			key := "x/from rest.txt"
			data := randomBytes(t, 200<<10)
			o.mustUpload(t, "b", key, string(data), withHeader("Content-Type", "text/csv"))
			rest := o.do(t, "HEAD", "/object/authenticated/b/"+escapeKey(key), o.service, "")
			require.Equal(t, http.StatusOK, rest.Status)
			etag := rest.Header.Get("ETag")
			require.Equal(t, quotedMD5(string(data)), etag)
			c := o.s3Service()
			get, got := s3Get(t, c, "b", key)
			require.True(t, bytes.Equal(data, got), "S3 GetObject returned other bytes")
			require.Equal(t, etag, aws.ToString(get.ETag))
			require.Equal(t, "text/csv", aws.ToString(get.ContentType))
			require.Equal(t, int64(len(data)), aws.ToInt64(get.ContentLength))
			page, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("b"), Prefix: aws.String("x/")})
			require.NoError(t, err)
			require.Equal(t, []string{key}, contentKeys(page.Contents))
			require.Equal(t, etag, aws.ToString(page.Contents[0].ETag))
			require.Equal(t, int64(len(data)), aws.ToInt64(page.Contents[0].Size))
			// Deleted through S3, gone for REST.
			_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String(key)})
			require.NoError(t, err)
			requireAPIError(t, o.get(t, "/object/authenticated/b/"+escapeKey(key), o.service), 400, errNoSuchKey)
			o.requireBlobsAccounted(t)
		})
	})
}

// ---------------------------------------------------------------------------------------------
// 4. Refusals: exact errors, and nothing stored (no row, no blob, no upload in flight).

// s3ErrorDoc is S3's error document.
type s3ErrorDoc struct {
	XMLName  xml.Name `xml:"Error"`
	Resource string   `xml:"Resource"`
	Code     string   `xml:"Code"`
	Message  string   `xml:"Message"`
}

// s3ErrorOf reads the S3 error answer r carries.
func s3ErrorOf(t *testing.T, r httpResponse) s3Failure {
	t.Helper()
	require.Equal(t, "application/xml; charset=utf-8", r.Header.Get("Content-Type"), "%s", r)
	var doc s3ErrorDoc
	require.NoError(t, xml.Unmarshal(r.Body, &doc), "%s", r)
	return s3Failure{r.Status, doc.Code, doc.Message}
}

// s3Signed sends a request signed by the AWS SDK's SigV4 signer as the key pair (at when),
// declaring payloadHash as the body's SHA-256; a negative size sends the body chunked (no
// Content-Length). It returns the error the answer carries.
func (o *objEnv) s3Signed(t *testing.T, method, path string, body io.Reader, size int64, payloadHash string, when time.Time) s3Failure {
	t.Helper()
	req, err := http.NewRequest(method, o.baseURL+path, body)
	require.NoError(t, err)
	req.ContentLength = size
	if size < 0 {
		req.Body = io.NopCloser(body) // no length known to net/http: chunked
		req.ContentLength = -1
	}
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	signer := v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true })
	require.NoError(t, signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s3TestAccessKey, SecretAccessKey: s3TestSecretKey},
		req, payloadHash, "s3", s3TestRegion, when))
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return s3ErrorOf(t, httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data})
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestS3SDKRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const limit = 1 << 10 // UPLOAD_FILE_SIZE_LIMIT of these servers
	body := []byte("a small body")
	cases := []struct {
		name string
		run  func(t *testing.T, o *objEnv) s3Failure
		want s3Failure
	}{
		{"WrongSecret", func(t *testing.T, o *objEnv) s3Failure {
			_, err := o.s3Client(s3TestAccessKey, "not-the-secret", "").PutObject(ctx, &awss3.PutObjectInput{
				Bucket: aws.String("b"), Key: aws.String("r/wrong-secret"), Body: bytes.NewReader(body)})
			return sdkFailure(t, err)
		}, s3Failure{403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method."}},
		{"WrongSessionSecret", func(t *testing.T, o *objEnv) s3Failure {
			_, err := o.s3Client(s3door.DefaultTenantID, o.service, o.userA).PutObject(ctx, &awss3.PutObjectInput{
				Bucket: aws.String("b"), Key: aws.String("r/wrong-session-secret"), Body: bytes.NewReader(body)})
			return sdkFailure(t, err)
		}, s3Failure{403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided, Check your credentials. The session token should be a valid JWT token"}},
		{"UnknownAccessKey", func(t *testing.T, o *objEnv) s3Failure {
			_, err := o.s3Client("AKIDUNKNOWN", s3TestSecretKey, "").PutObject(ctx, &awss3.PutObjectInput{
				Bucket: aws.String("b"), Key: aws.String("r/unknown-key"), Body: bytes.NewReader(body)})
			return sdkFailure(t, err)
		}, s3Failure{403, "AccessDenied", "Invalid Access Key"}},
		{"ExpiredSessionToken", func(t *testing.T, o *objEnv) s3Failure {
			expired := mintJWT(t, "service_role", withExp(time.Now().Add(-time.Hour)))
			_, err := o.sdkSession(expired).PutObject(ctx, &awss3.PutObjectInput{
				Bucket: aws.String("b"), Key: aws.String("r/expired-token"), Body: bytes.NewReader(body)})
			return sdkFailure(t, err)
		}, s3Failure{403, "AccessDenied", `"exp" claim timestamp check failed`}},
		{"SkewedClock", func(t *testing.T, o *objEnv) s3Failure {
			return o.s3Signed(t, "PUT", "/s3/b/r/skewed", bytes.NewReader(body), int64(len(body)), hexSHA256(body), time.Now().Add(-time.Hour))
		}, s3Failure{403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large."}},
		{"PayloadHashMismatch", func(t *testing.T, o *objEnv) s3Failure {
			return o.s3Signed(t, "PUT", "/s3/b/r/sha-mismatch", bytes.NewReader(body), int64(len(body)), hexSHA256([]byte("another body")), time.Now())
		}, s3Failure{400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."}},
		{"PayloadHashMismatchChunked", func(t *testing.T, o *objEnv) s3Failure {
			big := bytes.Repeat([]byte("x"), 200)
			return o.s3Signed(t, "PUT", "/s3/b/r/sha-mismatch-chunked", io.MultiReader(bytes.NewReader(big)), -1, hexSHA256(body), time.Now())
		}, s3Failure{400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."}},
		{"ContentMD5Mismatch", func(t *testing.T, o *objEnv) s3Failure {
			sum := md5.Sum([]byte("another body"))
			_, err := o.s3Service().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("r/bad-digest"),
				Body: bytes.NewReader(body), ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:]))})
			return sdkFailure(t, err)
		}, s3Failure{400, "BadDigest", "The Content-MD5 you specified did not match what we received."}},
		{"Oversize", func(t *testing.T, o *objEnv) s3Failure {
			_, err := o.s3Service().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("r/oversize"),
				Body: bytes.NewReader(randomBytes(t, limit+1))})
			return sdkFailure(t, err)
		}, s3Failure{413, "EntityTooLarge", "The object exceeded the maximum allowed size"}},
		{"OversizeExpectContinue", func(t *testing.T, o *objEnv) s3Failure {
			// Above 2 MiB the SDK asks "Expect: 100-continue": refused before the body.
			_, err := o.s3Service().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("r/oversize-expect"),
				Body: bytes.NewReader(randomBytes(t, 3<<20))})
			return sdkFailure(t, err)
		}, s3Failure{413, "EntityTooLarge", "The object exceeded the maximum allowed size"}},
		{"OversizeChunked", func(t *testing.T, o *objEnv) s3Failure {
			big := randomBytes(t, 4*limit)
			return o.s3Signed(t, "PUT", "/s3/b/r/oversize-chunked", io.MultiReader(bytes.NewReader(big)), -1, "UNSIGNED-PAYLOAD", time.Now())
		}, s3Failure{413, "EntityTooLarge", "The object exceeded the maximum allowed size"}},
		{"BadKey", func(t *testing.T, o *objEnv) s3Failure {
			_, err := o.s3Service().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("a[b]"), Body: bytes.NewReader(body)})
			return sdkFailure(t, err)
		}, s3Failure{400, "InvalidKey", "Invalid key: a[b]"}},
		{"MissingBucket", func(t *testing.T, o *objEnv) s3Failure {
			_, err := o.s3Service().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("nope"), Key: aws.String("k"), Body: bytes.NewReader(body)})
			return sdkFailure(t, err)
		}, s3Failure{404, "NoSuchBucket", "Bucket not found"}},
	}
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		// One server per backend; the cases run one after the other on it, each checked to
		// have left the store exactly as it found it.
		be.run(t, "Each", func(t *testing.T, o *objEnv) {
			s3Put(t, o.s3Service(), "b", "keep.txt", []byte("kept"))
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					require.Equal(t, c.want, c.run(t, o))
					o.requireNothingStored(t, "b/keep.txt")
				})
			}
			_, got := s3Get(t, o.s3Service(), "b", "keep.txt")
			require.Equal(t, "kept", string(got))
		}, withUploadLimit(limit))
	})
}
