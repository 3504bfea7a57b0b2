package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pgstorage/storage/blob"
)

// Defaults and limits for multipart uploads.
const (
	DefaultPartSize    = 8 << 20
	DefaultConcurrency = 2
	// MinPartSize is S3's minimum size of every part but the last, MaxPartSize its maximum
	// (also the largest single PutObject).
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
)

// Config says where the blobs go. cmd fills it from the environment variables named below.
type Config struct {
	// Bucket holds the blobs; it must exist. STORAGE_S3_BUCKET.
	Bucket string
	// Endpoint is the service's base URL, e.g. "http://127.0.0.1:7070" for MinIO or
	// versitygw; empty means AWS S3 for Region. STORAGE_S3_ENDPOINT.
	Endpoint string
	// Region signs requests; empty means the SDK's default (AWS_REGION, shared config), then
	// "us-east-1", which most S3-compatible servers accept. STORAGE_S3_REGION.
	Region string
	// ForcePathStyle addresses the bucket as endpoint/bucket/key instead of
	// bucket.endpoint/key; most self-hosted servers need it. STORAGE_S3_FORCE_PATH_STYLE.
	ForcePathStyle bool
	// AccessKeyID and SecretAccessKey are static credentials (AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY). Both empty means the SDK's default chain (environment, shared
	// files, instance roles); one without the other is an error.
	AccessKeyID     string
	SecretAccessKey string
	// Prefix is prepended to every key, e.g. "blobs/" to share a bucket with other data. It is
	// concatenated as is: end it with "/" for a directory-like prefix.
	Prefix string
	// PartSize is the size of multipart upload parts and the largest size sent as one
	// PutObject; 0 means DefaultPartSize; outside [MinPartSize, MaxPartSize] is an error. A
	// blob has at most 10,000 parts, so PartSize×10,000 is the largest (80 GiB by default).
	PartSize int64
	// Concurrency is how many part buffers one upload may fill and send at once; 0 means
	// DefaultConcurrency. An upload holds at most PartSize×Concurrency (see MaxPutBuffer).
	Concurrency int
	// SpoolDir is where each Append of a resumable upload spools the part it is reading (up
	// to PartSize + 5 MiB, in an unlinked temporary file) before sending it; empty means
	// os.TempDir() ($TMPDIR). Put it on a disk: on a tmpfs the spooled parts take memory.
	SpoolDir string
}

// Store keeps blobs as objects in one bucket. It is safe for concurrent use.
type Store struct {
	client      *awss3.Client
	parts       *parts
	bucket      string
	prefix      string
	partSize    int64
	concurrency int
	spoolDir    string
	// partLimit is how many parts a resumable upload may have: S3's maxParts, lowered by tests.
	partLimit int32
	// listPageSize caps the entries per List and Leftovers request; 0 means the server's
	// default (1,000 on S3). Tests lower it to cross page boundaries with few blobs.
	listPageSize int32
}

var _ blob.Store = (*Store)(nil)

// New builds a client for cfg and checks that the bucket is reachable (HeadBucket, which
// needs s3:ListBucket), so a wrong endpoint, bucket or key fails at startup, not at the
// first upload.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("blob/s3: no bucket configured")
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize {
		return nil, fmt.Errorf("blob/s3: part size %d is outside S3's limits [%d, %d]", cfg.PartSize, MinPartSize, MaxPartSize)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("blob/s3: negative concurrency %d", cfg.Concurrency)
	}
	if cfg.SpoolDir != "" {
		if fi, err := os.Stat(cfg.SpoolDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("blob/s3: spool directory %q is not a directory (%v)", cfg.SpoolDir, err)
		}
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	switch {
	case cfg.AccessKeyID != "" && cfg.SecretAccessKey != "":
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	case cfg.AccessKeyID != "" || cfg.SecretAccessKey != "":
		return nil, errors.New("blob/s3: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
	}
	opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(abortiveClose)))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("blob/s3: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
		// By default the SDK adds CRC32 checksums to every upload, which needs a seekable body
		// or aws-chunked trailers that not every S3-compatible server takes; bodies here are
		// streams. Checksums only where an operation requires them.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.APIOptions = append(o.APIOptions, markUnavailable)
	})
	s := &Store{
		client:      client,
		parts:       newParts(cfg.PartSize),
		bucket:      cfg.Bucket,
		prefix:      cfg.Prefix,
		partSize:    cfg.PartSize,
		concurrency: cfg.Concurrency,
		spoolDir:    cfg.SpoolDir,
		partLimit:   maxParts,
	}
	if _, err := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		return nil, fmt.Errorf("blob/s3: bucket %q at %q: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	return s, nil
}

// Client returns the underlying S3 client, for tools that list the bucket (reconcile) and for
// tests that inspect it.
func (s *Store) Client() *awss3.Client { return s.client }

// Bucket returns the bucket and Prefix the store writes to.
func (s *Store) Bucket() (bucket, prefix string) { return s.bucket, s.prefix }

// MaxPutBuffer bounds the memory one Put holds, however large the blob: Concurrency part
// buffers for a multipart upload (pooled across Puts, so mostly not even allocated anew).
// A Put of known size up to PartSize streams and buffers nothing.
func (s *Store) MaxPutBuffer() int64 {
	return s.partSize * int64(s.concurrency)
}

// abortiveClose makes the client reset (RST) its TCP connections instead of closing them
// cleanly. When Put stops sending a streamed body midway (the reader failed, the context
// ended), net/http closes the connection. After a clean close (FIN), a server that does not
// hold the body to its Content-Length sees a shorter body end normally and stores the
// truncated object: versitygw 1.8.0 does (its test suite caught it), AWS S3 and MinIO answer
// IncompleteBody. A reset is a read error on every server. The hole that remains: over TLS
// the close starts with a close_notify alert, which such a server also takes for a normal
// end, so a lax server must not be used over https with bodies that can fail midway.
// Put's own multipart uploads are not affected: their parts go out from complete buffers. The
// parts of blob.Multipart (PutPart) stream like putObject, and the reset protects them the
// same way: a truncated part would replace the earlier part of its number.
func abortiveClose(tr *http.Transport) {
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return c, err
	}
}

func (s *Store) objectKey(key string) (*string, error) {
	if err := blob.CheckKey(key); err != nil {
		return nil, err
	}
	return aws.String(s.prefix + key), nil
}

// Put uploads r under key, conditionally on no object being there (If-None-Match: *, which
// S3 evaluates atomically at the end of the upload; a concurrent writer gets 412 or 409).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("blob/s3: put %q: bad size %d", key, size)
	}
	// Innermost, stop reading once the context is done (the client went away); outermost,
	// remember why reading failed and make sure nothing reads r once Put has returned.
	var body io.Reader = blob.ContextReader(ctx, r)
	if size >= 0 {
		body = &exactReader{r: body, remaining: size}
	}
	g := &bodyGuard{r: body}

	if size >= 0 && size <= s.partSize {
		err = s.putObject(ctx, k, g, size)
	} else {
		err = s.upload(ctx, k, g, size)
	}
	readErr := g.close()
	if err == nil {
		return nil
	}
	if readErr != nil {
		return fmt.Errorf("blob/s3: put %q: reading the body: %w", key, readErr)
	}
	if isPreconditionFailed(err) {
		return fmt.Errorf("%w: %q", blob.ErrExists, key)
	}
	return fmt.Errorf("blob/s3: put %q: %w", key, err)
}

// putObject streams a body of known size (at most one part) in a single request, with no
// buffering. The payload is sent unsigned (UNSIGNED-PAYLOAD): signing it would need its
// SHA-256 before the first byte goes out, i.e. a seekable body. Content-Length still bounds
// it, and TLS protects it on https endpoints.
func (s *Store) putObject(ctx context.Context, k *string, body io.Reader, size int64) error {
	in := &awss3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           k,
		ContentLength: aws.Int64(size),
		IfNoneMatch:   aws.String("*"),
		Body:          body,
	}
	if size == 0 {
		// net/http treats a zero ContentLength with a non-nil body as "unknown" (chunked, which
		// S3 refuses), so check the promised emptiness here and send no body at all.
		if err := expectEOF(body); err != nil {
			return err
		}
		in.Body = nil
	}
	_, err := s.client.PutObject(ctx, in, unsignedStream)
	return err
}

// markUnavailable marks, for every operation, the errors that say the S3 service cannot serve
// now (blob.ErrUnavailable): no connection, a connection cut, a timeout, a 5xx answer (after
// the SDK's retries). Errors of the request's body (the client's upload) pass through as they
// are: the servers tell those apart first.
func markUnavailable(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("MarkUnavailable",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if err != nil && ctx.Err() == nil && serviceDown(err) {
				err = blob.Unavailable(err)
			}
			return out, md, err
		}), middleware.Before)
}

// serviceDown: err is the S3 service's failure, not the request's.
func serviceDown(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "ExistingObjectIsDirectory" {
		// versitygw's POSIX backend removes a directory once a delete empties it, which races
		// with a put into it (its mkdir, then its link: the link fails, answered with this
		// 409). No key of ours is a directory of another, so it is that race: a retry works.
		return true
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() != 0 { // 0: no answer at all
		return resp.HTTPStatusCode() >= 500
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED)
}

// unsignedStream sends a request's body as a stream: unsigned (UNSIGNED-PAYLOAD, see putObject)
// and never retried, since a stream cannot be replayed: a retry would send a truncated body.
func unsignedStream(o *awss3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	o.RetryMaxAttempts = 1
}

// Get reads the object, with a Range header unless the whole blob is wanted.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < -1 {
		return nil, fmt.Errorf("blob/s3: get %q: bad range offset %d length %d", key, offset, length)
	}
	if length == 0 {
		// No Range header can ask for zero bytes; answer locally, but still say whether the
		// blob exists.
		if _, err := s.Size(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(eofReader{}), nil
	}
	in := &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: k}
	if offset > 0 || length > 0 {
		rng := fmt.Sprintf("bytes=%d-", offset)
		if length > 0 {
			rng += fmt.Sprint(offset + length - 1)
		}
		in.Range = aws.String(rng)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, s.mapErr("get", key, err)
	}
	if in.Range != nil && out.ContentRange == nil {
		// A server that ignored Range sends the whole object: handing that out as the range
		// would serve wrong bytes.
		out.Body.Close()
		return nil, fmt.Errorf("blob/s3: get %q: server ignored Range %s", key, *in.Range)
	}
	return out.Body, nil
}

// Size asks HeadObject for the object's length.
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return 0, err
	}
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if err != nil {
		return 0, s.mapErr("size", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Delete removes the object. S3 answers 204 for missing keys too; some compatible servers
// say 404 instead, which counts as done.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if err := s.mapErr("delete", key, err); err != nil && !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	return nil
}

// mapErr turns S3's "no such key" into blob.ErrNotFound. A missing bucket also answers 404
// but is a configuration error, never a missing blob, so it stays an error (HeadObject's 404
// has no body to tell them apart; New checked the bucket).
func (s *Store) mapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return fmt.Errorf("blob/s3: %s %q: %w", op, key, err)
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) || hasStatus(err, http.StatusNotFound) {
		return fmt.Errorf("%w: %q", blob.ErrNotFound, key)
	}
	return fmt.Errorf("blob/s3: %s %q: %w", op, key, err)
}

// isPreconditionFailed recognizes a refused If-None-Match: 412 PreconditionFailed when the
// object exists, 409 ConditionalRequestConflict when another upload to the key won the race.
func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	return hasStatus(err, http.StatusPreconditionFailed)
}

func hasStatus(err error, status int) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == status
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
