package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgstorage/storage/identity"
)

// Config is the whole configuration of the storage binary, read from the environment. Names
// are Supabase Storage's where it has one, so one env file serves both servers.
type Config struct {
	// DATABASE_URL: PostgreSQL to use. Empty (the default) starts the embedded cluster under
	// STORAGE_DATA_DIR. The connecting role must be able to SET ROLE to anon, authenticated
	// and service_role (the first migration grants this when it can).
	DatabaseURL string
	// DATABASE_MAX_CONNECTIONS: size of the connection pool. Default: 4 per CPU core.
	MaxConns int
	// STORAGE_DATA_DIR: where the embedded default keeps its PostgreSQL cluster (pg/), its JWT
	// secret (jwt_secret) and its blobs. Default ./data.
	DataDir string
	// STORAGE_PG_BINDIR: directory of the PostgreSQL server binaries (initdb, postgres) for
	// the embedded cluster. Default: found on PATH, through pg_config, or under
	// /usr/lib/postgresql.
	PGBinDir string
	// SERVER_HOST: interface to listen on. Default 0.0.0.0.
	Host string
	// SERVER_PORT: TCP port to listen on. Default 5000.
	Port int
	// AUTH_JWT_SECRET (alias PGRST_JWT_SECRET): HMAC secret of the JWTs clients send. With the
	// embedded default it may be left empty: one is generated and kept in the data dir. With
	// DATABASE_URL it may be left empty only when JWT_JWKS has keys (to verify bearer tokens)
	// and an oct urlSigningKey (for the SQL API to sign URLs with).
	JWTSecret string
	// AUTH_JWT_ALGORITHM: HS256 (default), HS384 or HS512.
	JWTAlgorithm string
	// JWT_JWKS: a static JSON Web Key Set, {"keys": [JWK…], "urlSigningKey": JWK}. Bearer
	// tokens may also be signed with its keys (RSA, EC P-256/384/521, Ed25519, oct; chosen by
	// kid); urlSigningKey, an oct key, signs URLs instead of AUTH_JWT_SECRET. nil = none.
	JWKS *identity.JWKS
	// AUTH_ALLOWED_ROLES: the only roles a JWT's role claim may name (a missing role is anon);
	// a token asking for another is refused with HTTP 403 before any database work. Default
	// anon,authenticated,service_role.
	AllowedRoles []string
	// UPLOAD_FILE_SIZE_LIMIT: largest object a REST upload may store, in bytes. Bucket limits
	// may not exceed it. Default 524288000 (500 MB).
	UploadFileSizeLimit int64
	// VERSION: the string GET /version answers. Default 0.0.0.
	Version string
	// SERVER_HEADER_TIMEOUT: time to receive a request's headers (and the first 8 KiB of its
	// body, read with them), from its first byte. Default 30s; 0 = none.
	HeaderTimeout time.Duration
	// SERVER_READ_TIMEOUT: the longest pause while a request body arrives; a client that
	// sends nothing for this long gets 408 and nothing is stored. It follows progress: an
	// upload of any length and duration succeeds while bytes keep coming. Default 60s; 0 =
	// none. (Before, it bounded a whole request, so slow uploads failed.)
	ReadTimeout time.Duration
	// SERVER_WRITE_TIMEOUT: the longest pause while a response is sent; a client that takes
	// no bytes for this long is dropped and its download's file closed. Default 60s; 0 = none.
	WriteTimeout time.Duration
	// SERVER_IDLE_TIMEOUT: how long a keep-alive connection may wait for its next request.
	// Default 120s; 0 = SERVER_HEADER_TIMEOUT.
	IdleTimeout time.Duration
	// SERVER_MAX_CONNECTIONS: the most connections open at once; more are refused with 503 and
	// Retry-After. auto (the default): half of what the open-files limit leaves once the
	// database pool, the uploads and 256 spare descriptors are counted (each connection may
	// hold a blob file too), at most 10000. A number above that budget is lowered to it.
	ServerMaxConns int // 0 = auto
	// SERVER_MAX_CONNECTIONS_PER_IP: the most connections open at once from one client
	// address. Default 1000; 0 = no cap (behind a load balancer every client has its address).
	MaxConnsPerIP int
	// SERVER_MAX_UPLOADS, SERVER_MAX_DOWNLOADS: the most uploads and downloads in progress at
	// once; more are refused with 503 and Retry-After. Defaults 256 and 4096; 0 = no cap.
	MaxUploads, MaxDownloads int
	// DATABASE_STATEMENT_TIMEOUT, DATABASE_LOCK_TIMEOUT: PostgreSQL's statement_timeout and
	// lock_timeout for each request's SQL call (transaction-local); past them the request
	// fails with 544 and 423. Defaults 30s and 5s; 0 = none.
	StatementTimeout, LockTimeout time.Duration
	// DATABASE_POOL_ACQUIRE_TIMEOUT: the longest a request waits for a pooled connection
	// before it is refused with 503 and Retry-After. Default 5s; 0 = no limit.
	PoolAcquireTimeout time.Duration
	// LOG_LEVEL: debug, info (default), warn or error.
	LogLevel slog.Level
	// LOG_FORMAT: json (default: one JSON object per line) or text (key=value).
	LogFormat string
	// METRICS_ENABLED: count and serve Prometheus metrics (default true). METRICS_ADDR: host:port
	// serving it at /metrics on a listener of its own; empty = GET /metrics on the API's.
	MetricsEnabled bool
	MetricsAddr    string
	// STORAGE_BACKEND: where object bytes live: file (default) or s3.
	Backend string
	// STORAGE_FILE_BACKEND_PATH: root directory of the file backend. Default
	// <STORAGE_DATA_DIR>/blobs.
	FileBackendPath string
	// STORAGE_S3_BUCKET, STORAGE_S3_ENDPOINT (empty = AWS), STORAGE_S3_REGION (default
	// us-east-1), STORAGE_S3_FORCE_PATH_STYLE (true for MinIO-like servers),
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: the s3 backend.
	S3Bucket, S3Endpoint, S3Region, S3AccessKeyID, S3SecretAccessKey string
	S3ForcePathStyle                                                 bool
	// STORAGE_S3_SPOOL_DIR: s3 backend: where resumable uploads spool the part they are
	// reading (at most one part per upload in progress). Empty: the system's temporary
	// directory.
	S3SpoolDir string
	// CORS_ALLOWED_ORIGINS: comma-separated origins browsers may call the server from;
	// default * (any).
	CORSAllowedOrigins []string
	// UPLOAD_SIGNED_URL_EXPIRATION_TIME: seconds a signed upload URL stays valid. Default 7200
	// (storage-js documents two hours).
	UploadURLExpiry int64
	// TUS_URL_PATH: the path written into resumable uploads' Location before the upload id;
	// default: /upload/resumable under the prefix the request used (/storage/v1 or none).
	TUSURLPath string
	// TUS_URL_EXPIRY_MS: an unfinished resumable upload expires this long after its last
	// append (milliseconds). Default 86400000 (24 h).
	TUSExpiry time.Duration
	// TUS_MAX_CONCURRENT_UPLOADS: resumable PATCHes that may stream at once on this server,
	// each holding a connection of a pool of their own (its upload's lock). Default 16.
	TUSMaxConcurrent int
	// STORAGE_PUBLIC_URL: when set, the scheme and host of resumable uploads' Location.
	PublicURL *url.URL
	// REQUEST_ALLOW_X_FORWARDED_PATH: prefix Location's path with X-Forwarded-Prefix.
	AllowForwardedPath bool
	// STORAGE_BLOB_RETENTION: how long a blob no row references any more stays in the store
	// before the collector deletes it (Go duration). A database restored to any point inside
	// this window finds every blob its rows reference: set it to cover the backup/PITR window.
	// Default 168h.
	BlobRetention time.Duration
	// STORAGE_GC_INTERVAL: time between collector runs (Go duration); 0 disables the collector
	// in this server. Default 30s.
	GCInterval time.Duration
	// STORAGE_LEFTOVER_GRACE: age after which the collector removes the leftovers of
	// interrupted uploads (the file store's temporary files, unfinished S3 multipart uploads)
	// by itself (Go duration, > 0). Longer than any live upload stays idle. Default 1h.
	LeftoverGrace time.Duration
	// STORAGE_UPLOAD_EXPIRY: age after which the collector takes an upload still marked in
	// flight (storage.blob_uploads) for the leftover of a server that died, ends it (a later
	// commit is refused) and queues its blob (Go duration, > 0). Longer than any upload may
	// take. Default 24h.
	UploadExpiry time.Duration
	// STORAGE_INLINE_MAX: uploads of at most this many bytes keep them in PostgreSQL
	// (storage.inline_blobs), written with the row in one transaction; 0 = none. At most 1 MiB
	// (each such body is read into memory first). Default 65536.
	InlineMax int64
	// WEBHOOK_URL: where storage events are POSTed (the reference's webhook), by one server at
	// a time. Empty (the default): none are sent; they are still recorded in storage.events and
	// notified on channel storage_events. WEBHOOK_API_KEY, when set, is sent as a bearer token.
	WebhookURL, WebhookAPIKey string
	// WEBHOOK_TIMEOUT: the longest one delivery attempt may take. Default 10s.
	WebhookTimeout time.Duration
	// WEBHOOK_MAX_RETRY_INTERVAL: the longest wait between attempts to deliver a refused event
	// (the wait starts at 1s and doubles). Default 5m.
	WebhookMaxRetry time.Duration
	// EVENTS_POLL_INTERVAL: how often the delivering server looks for new events (notifications
	// wake it at once when the database sends them: storage.events_notify). Default 1s.
	EventsPoll time.Duration
	// EVENTS_RETENTION: events older than this are deleted from storage.events, delivered or
	// not. Default 168h.
	EventsRetention time.Duration
	// S3_PROTOCOL_ENABLED: serve the S3 protocol at /s3 (and /storage/v1/s3). Default true;
	// only "false" turns it off (as the reference reads it).
	S3Enabled bool
	// S3_PROTOCOL_ACCESS_KEY_ID, S3_PROTOCOL_ACCESS_KEY_SECRET: the server-wide S3 key pair;
	// requests signed with it run as SERVICE_KEY's role (service_role). Unset: only
	// session-token requests (x-amz-security-token: a user's JWT) authenticate.
	S3ProtocolKeyID, S3ProtocolSecret string
	// S3_PROTOCOL_PREFIX: prepended to the path S3 signatures cover (behind a path-rewriting
	// proxy). Default empty.
	S3Prefix string
	// S3_PROTOCOL_ENFORCE_REGION: require the signature's region to be REGION.
	S3EnforceRegion bool
	// REGION: the region the S3 protocol reports and verifies; default STORAGE_S3_REGION.
	Region string
	// S3_ALLOW_FORWARDED_HEADER, S3_PROTOCOL_NON_CANONICAL_HOST_HEADER: where the host an S3
	// signature covers comes from behind proxies (Forwarded's host=, or a header of that name).
	S3AllowForwardedHeader   bool
	S3NonCanonicalHostHeader string
	// PROJECT_REF (or TENANT_ID; default storage-single-tenant) and ANON_KEY (default: the anon
	// key `storage keys` prints): the access key id and secret of S3 session-token mode.
	TenantID, AnonKey string
	// SERVICE_KEY: the JWT requests signed with the S3 key pair run as; default role
	// service_role without a sub.
	ServiceKey string
	// S3_MULTIPART_EXPIRY: an S3 multipart upload expires this long after its creation or its
	// last part; the collector then removes it and its parts. Default 24h.
	S3MultipartExpiry time.Duration
	// IMAGE_TRANSFORMATION_ENABLED (alias ENABLE_IMAGE_TRANSFORMATION): serve /render/image
	// and honour transform in POST /object/sign, rendering in process with libvips. Default
	// true (nothing else is needed); false answers those routes 404 as the reference does.
	ImageEnabled bool
	// IMAGE_TRANSFORMATION_LIMIT_MIN_SIZE, _MAX_SIZE (aliases IMG_LIMITS_MIN_SIZE,
	// IMG_LIMITS_MAX_SIZE): requested widths and heights are clamped into [min, max]. Default
	// 1 and 2000.
	ImageMinSize, ImageMaxSize int
	// IMAGE_TRANSFORMATION_MAX_SOURCE_SIZE: sources larger than this many bytes are refused
	// unread. Default 26214400 (25 MB, the hosted service's limit).
	ImageMaxSourceSize int64
	// IMAGE_TRANSFORMATION_MAX_SOURCE_RESOLUTION: sources of more megapixels are refused from
	// their header, before decoding (decompression bombs). Default 50.
	ImageMaxResolution float64
	// IMAGE_TRANSFORMATION_CONCURRENCY: renders at once; 0 (default) = one per core.
	// IMAGE_TRANSFORMATION_QUEUE_SIZE: requests that may wait for one (default 64); beyond,
	// 429 SlowDown. IMAGE_TRANSFORMATION_QUEUE_TIMEOUT: the longest wait (default 15s), then 429.
	ImageConcurrency, ImageQueueSize int
	ImageQueueTimeout                time.Duration
	// IMAGE_TRANSFORMATION_QUALITY: encoder quality when a request sets none. Default 80.
	ImageQuality int
	// IMAGE_TRANSFORMATION_CACHE: keep rendered variants in the blob store (freed with their
	// source version). Default true; false renders every request.
	ImageCache bool
	// RATE_LIMITER_ENABLED (alias ENABLE_RATE_LIMITER): limit each client address to
	// RATE_LIMITER_RENDER_PATH_MAX_REQ_SEC requests per second (over a 4 s window) to one
	// /render/image path, as the reference's optional limiter; the address is X-Real-IP, else
	// X-Client-IP, else the peer's. Default false, 5. RATE_LIMITER_DRIVER: memory (per server;
	// the reference's redis driver is not offered).
	RateLimiterEnabled bool
	RateLimitRender    int
	// STORAGE_PPROF_ADDR: host:port for Go's profiling endpoints (/debug/pprof/); empty (the
	// default) serves none. Profiles expose internals: bind it to loopback.
	PprofAddr string
}

// envVar is one documented environment variable: how --help shows it and how it is read.
type envVar struct {
	name, def, help string
	set             func(c *Config, v string) error
}

var envVars = []envVar{
	{"DATABASE_URL", "", "PostgreSQL connection URL; empty = embedded cluster in STORAGE_DATA_DIR", func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{"DATABASE_MAX_CONNECTIONS", strconv.Itoa(4 * runtime.NumCPU()), "connection pool size", intVar(func(c *Config, n int) { c.MaxConns = n }, 1)},
	{"STORAGE_DATA_DIR", "./data", "embedded default's home: PostgreSQL cluster, JWT secret, blobs", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"STORAGE_PG_BINDIR", "", "PostgreSQL server binaries; empty = PATH, pg_config --bindir, /usr/lib/postgresql/*/bin", func(c *Config, v string) error { c.PGBinDir = v; return nil }},
	{"SERVER_HOST", "0.0.0.0", "interface to listen on", func(c *Config, v string) error { c.Host = v; return nil }},
	{"SERVER_PORT", "5000", "TCP port to listen on", intVar(func(c *Config, n int) { c.Port = n }, 0, 65535)},
	{"AUTH_JWT_SECRET", "", "JWT HMAC secret (alias PGRST_JWT_SECRET); embedded default: generated and kept in the data dir; with DATABASE_URL required unless JWT_JWKS has keys and a urlSigningKey", func(c *Config, v string) error { c.JWTSecret = v; return nil }},
	{"AUTH_JWT_ALGORITHM", "HS256", "JWT algorithm: HS256, HS384 or HS512", func(c *Config, v string) error {
		switch v {
		case "HS256", "HS384", "HS512":
			c.JWTAlgorithm = v
			return nil
		}
		return errors.New("must be HS256, HS384 or HS512")
	}},
	{"JWT_JWKS", "", `JSON Web Key Set {"keys":[…],"urlSigningKey":…}: RSA, EC, Ed25519 and oct keys JWTs may be signed with (chosen by kid); urlSigningKey (oct only) signs URLs instead of AUTH_JWT_SECRET`, func(c *Config, v string) error {
		if v == "" {
			c.JWKS = nil
			return nil
		}
		s, err := identity.ParseJWKS([]byte(v))
		c.JWKS = s
		return err
	}},
	{"AUTH_ALLOWED_ROLES", strings.Join(identity.DefaultRoles, ","), "comma-separated roles a JWT may run as (missing role = anon); any other role is refused with HTTP 403", func(c *Config, v string) error {
		c.AllowedRoles = nil
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.AllowedRoles = append(c.AllowedRoles, r)
			}
		}
		return identity.CheckRoles(c.AllowedRoles)
	}},
	{"UPLOAD_FILE_SIZE_LIMIT", "524288000", "largest REST upload in bytes; bucket limits may not exceed it", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return errors.New("must be a positive number of bytes")
		}
		c.UploadFileSizeLimit = n
		return nil
	}},
	{"VERSION", "0.0.0", "version string GET /version answers", func(c *Config, v string) error { c.Version = v; return nil }},
	{"SERVER_HEADER_TIMEOUT", "30s", "time to receive a request's headers (Go duration, 0 = none)", durationVar(func(c *Config, d time.Duration) { c.HeaderTimeout = d })},
	{"SERVER_READ_TIMEOUT", "60s", "longest pause while a request body arrives, then 408 and nothing stored; transfers of any duration succeed while bytes move (0 = none)", durationVar(func(c *Config, d time.Duration) { c.ReadTimeout = d })},
	{"SERVER_WRITE_TIMEOUT", "60s", "longest pause while a response is sent (client not reading), then the connection is dropped (0 = none)", durationVar(func(c *Config, d time.Duration) { c.WriteTimeout = d })},
	{"SERVER_IDLE_TIMEOUT", "120s", "keep-alive wait for the next request (Go duration, 0 = SERVER_HEADER_TIMEOUT)", durationVar(func(c *Config, d time.Duration) { c.IdleTimeout = d })},
	{"SERVER_MAX_CONNECTIONS", "auto", "most open connections, then 503 + Retry-After; auto = half the open-files limit left after the pool, uploads and 256 spare, at most 10000", func(c *Config, v string) error {
		if v == "auto" {
			c.ServerMaxConns = 0
			return nil
		}
		return intVar(func(c *Config, n int) { c.ServerMaxConns = n }, 1)(c, v)
	}},
	{"SERVER_MAX_CONNECTIONS_PER_IP", "1000", "most open connections from one client address (0 = no cap; behind a load balancer use 0)", intVar(func(c *Config, n int) { c.MaxConnsPerIP = n }, 0)},
	{"SERVER_MAX_UPLOADS", "256", "most uploads in progress, then 503 + Retry-After (0 = no cap)", intVar(func(c *Config, n int) { c.MaxUploads = n }, 0)},
	{"SERVER_MAX_DOWNLOADS", "4096", "most downloads in progress, then 503 + Retry-After (0 = no cap)", intVar(func(c *Config, n int) { c.MaxDownloads = n }, 0)},
	{"DATABASE_STATEMENT_TIMEOUT", "30s", "statement_timeout of each request's SQL call, then 544 (0 = none)", durationVar(func(c *Config, d time.Duration) { c.StatementTimeout = d })},
	{"DATABASE_LOCK_TIMEOUT", "5s", "lock_timeout of each request's SQL call, then 423 (0 = none)", durationVar(func(c *Config, d time.Duration) { c.LockTimeout = d })},
	{"DATABASE_POOL_ACQUIRE_TIMEOUT", "5s", "longest wait for a pooled database connection, then 503 + Retry-After (0 = no limit)", durationVar(func(c *Config, d time.Duration) { c.PoolAcquireTimeout = d })},
	{"LOG_LEVEL", "info", "debug, info, warn or error; info logs one line per request", func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
	{"LOG_FORMAT", "json", "json (one object per line) or text (key=value)", func(c *Config, v string) error {
		if v != "json" && v != "text" {
			return errors.New("must be json or text")
		}
		c.LogFormat = v
		return nil
	}},
	{"METRICS_ENABLED", "true", "count and serve Prometheus metrics at /metrics; false counts nothing", boolVar(func(c *Config, b bool) { c.MetricsEnabled = b })},
	{"METRICS_ADDR", "", "host:port serving /metrics on a listener of its own; empty = on the API's port", func(c *Config, v string) error { c.MetricsAddr = v; return nil }},
	{"STORAGE_BACKEND", "file", "where object bytes live: file or s3", func(c *Config, v string) error {
		if v != "file" && v != "s3" {
			return errors.New("must be file or s3")
		}
		c.Backend = v
		return nil
	}},
	{"STORAGE_FILE_BACKEND_PATH", "", "file backend root; empty = <STORAGE_DATA_DIR>/blobs", func(c *Config, v string) error { c.FileBackendPath = v; return nil }},
	{"STORAGE_S3_BUCKET", "", "s3 backend: bucket (required with STORAGE_BACKEND=s3)", func(c *Config, v string) error { c.S3Bucket = v; return nil }},
	{"STORAGE_S3_ENDPOINT", "", "s3 backend: endpoint URL; empty = AWS", func(c *Config, v string) error { c.S3Endpoint = v; return nil }},
	{"STORAGE_S3_REGION", "us-east-1", "s3 backend: region", func(c *Config, v string) error { c.S3Region = v; return nil }},
	{"STORAGE_S3_FORCE_PATH_STYLE", "false", "s3 backend: path-style addressing (MinIO, versitygw)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		c.S3ForcePathStyle = b
		return nil
	}},
	{"STORAGE_S3_SPOOL_DIR", "", "s3 backend: directory on disk where resumable uploads spool the part in progress (empty = the system's temporary directory)", func(c *Config, v string) error { c.S3SpoolDir = v; return nil }},
	{"AWS_ACCESS_KEY_ID", "", "s3 backend: access key", func(c *Config, v string) error { c.S3AccessKeyID = v; return nil }},
	{"AWS_SECRET_ACCESS_KEY", "", "s3 backend: secret key", func(c *Config, v string) error { c.S3SecretAccessKey = v; return nil }},
	{"UPLOAD_SIGNED_URL_EXPIRATION_TIME", "7200", "seconds a signed upload URL stays valid", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return errors.New("must be a positive number of seconds")
		}
		c.UploadURLExpiry = n
		return nil
	}},
	{"TUS_URL_PATH", "", "path in resumable uploads' Location before the id (default /upload/resumable under the request's prefix)", func(c *Config, v string) error {
		if v != "" && !strings.HasPrefix(v, "/") {
			return errors.New("must be a path starting with /")
		}
		c.TUSURLPath = strings.TrimRight(v, "/")
		return nil
	}},
	{"TUS_URL_EXPIRY_MS", "86400000", "an unfinished resumable upload expires this many milliseconds after its last append", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1000 {
			return errors.New("must be a number of milliseconds, at least 1000")
		}
		c.TUSExpiry = time.Duration(n) * time.Millisecond
		return nil
	}},
	{"TUS_MAX_CONCURRENT_UPLOADS", "16", "resumable PATCHes streaming at once on this server, each holding a database connection of its own (then 503)", intVar(func(c *Config, n int) { c.TUSMaxConcurrent = n }, 1, 10000)},
	{"STORAGE_PUBLIC_URL", "", "scheme://host[:port] clients reach this server by, for resumable uploads' Location (default: from Host and X-Forwarded-*)", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("must be an http(s) URL such as https://storage.example.com")
		}
		c.PublicURL = u
		return nil
	}},
	{"REQUEST_ALLOW_X_FORWARDED_PATH", "false", "true: resumable uploads' Location starts with the X-Forwarded-Prefix header", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		c.AllowForwardedPath = b
		return nil
	}},
	{"STORAGE_BLOB_RETENTION", "168h", "keep freed blobs this long before deleting them (cover your backup/PITR window)", durationVar(func(c *Config, d time.Duration) { c.BlobRetention = d })},
	{"STORAGE_GC_INTERVAL", "30s", "time between blob collector runs (0 = no collector in this server)", durationVar(func(c *Config, d time.Duration) { c.GCInterval = d })},
	{"STORAGE_LEFTOVER_GRACE", "1h", "the collector removes leftovers of interrupted uploads (temporary files, unfinished S3 multipart uploads) this old; longer than any live upload stays idle", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("must be a positive Go duration such as 30m or 1h")
		}
		c.LeftoverGrace = d
		return nil
	}},
	{"STORAGE_UPLOAD_EXPIRY", "24h", "the collector ends uploads still in flight this long after they started (their server died) and deletes their bytes; a later commit is refused; longer than any upload may take", positiveDurationVar(func(c *Config, d time.Duration) { c.UploadExpiry = d })},
	{"STORAGE_INLINE_MAX", "65536", "uploads of at most this many bytes are stored in PostgreSQL with their row (one transaction, no file), 0 = none; at most 1048576", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<20 {
			return errors.New("must be a number of bytes from 0 to 1048576")
		}
		c.InlineMax = n
		return nil
	}},
	{"WEBHOOK_URL", "", "http(s) URL storage events are POSTed to, by one server at a time; empty = none sent (still recorded in storage.events and notified on storage_events)", func(c *Config, v string) error {
		if v == "" {
			c.WebhookURL = ""
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("must be an http(s) URL such as https://hooks.example.com/storage")
		}
		c.WebhookURL = v
		return nil
	}},
	{"WEBHOOK_API_KEY", "", "sent with every webhook as Authorization: Bearer <key>; empty = no Authorization header", func(c *Config, v string) error { c.WebhookAPIKey = v; return nil }},
	{"WEBHOOK_TIMEOUT", "10s", "longest webhook delivery attempt (Go duration > 0), then it is retried", positiveDurationVar(func(c *Config, d time.Duration) { c.WebhookTimeout = d })},
	{"WEBHOOK_MAX_RETRY_INTERVAL", "5m", "longest wait between attempts to deliver a refused event (from 1s, doubling)", positiveDurationVar(func(c *Config, d time.Duration) { c.WebhookMaxRetry = d })},
	{"EVENTS_POLL_INTERVAL", "1s", "how often the delivering server looks for new events (at once on a notification when storage.events_notify is on)", positiveDurationVar(func(c *Config, d time.Duration) { c.EventsPoll = d })},
	{"EVENTS_RETENTION", "168h", "delete events from storage.events this long after the change, delivered or not", positiveDurationVar(func(c *Config, d time.Duration) { c.EventsRetention = d })},
	{"STORAGE_PPROF_ADDR", "", "host:port serving /debug/pprof/ (CPU and heap profiles); empty = off; keep it on loopback", func(c *Config, v string) error { c.PprofAddr = v; return nil }},
	{"S3_PROTOCOL_ENABLED", "true", "serve the S3 protocol at /s3 and /storage/v1/s3 (only false turns it off)", func(c *Config, v string) error { c.S3Enabled = v != "false"; return nil }},
	{"S3_PROTOCOL_ACCESS_KEY_ID", "", "S3 access key id of the server-wide key pair (requests run as SERVICE_KEY's role); empty = session tokens only", func(c *Config, v string) error { c.S3ProtocolKeyID = v; return nil }},
	{"S3_PROTOCOL_ACCESS_KEY_SECRET", "", "S3 secret access key of the server-wide key pair", func(c *Config, v string) error { c.S3ProtocolSecret = v; return nil }},
	{"S3_PROTOCOL_PREFIX", "", "path prefix S3 signatures cover before the request path (behind a path-rewriting proxy)", func(c *Config, v string) error { c.S3Prefix = v; return nil }},
	{"S3_PROTOCOL_ENFORCE_REGION", "false", "true: refuse S3 signatures scoped to another region than REGION", boolVar(func(c *Config, b bool) { c.S3EnforceRegion = b })},
	{"REGION", "", "region the S3 protocol reports (GetBucketLocation, HeadBucket) and verifies; empty = STORAGE_S3_REGION", func(c *Config, v string) error { c.Region = v; return nil }},
	{"S3_ALLOW_FORWARDED_HEADER", "false", "true: S3 signatures cover the host of the Forwarded header", boolVar(func(c *Config, b bool) { c.S3AllowForwardedHeader = b })},
	{"S3_PROTOCOL_NON_CANONICAL_HOST_HEADER", "", "name of a header whose value S3 signatures cover as the host", func(c *Config, v string) error { c.S3NonCanonicalHostHeader = v; return nil }},
	{"PROJECT_REF", "", "S3 session-token mode's access key id (alias TENANT_ID; empty = storage-single-tenant)", func(c *Config, v string) error { c.TenantID = v; return nil }},
	{"ANON_KEY", "", "S3 session-token mode's secret access key; empty = the anon key `storage keys` prints", func(c *Config, v string) error { c.AnonKey = v; return nil }},
	{"SERVICE_KEY", "", "JWT that S3 key-pair requests run as; empty = role service_role, no sub", func(c *Config, v string) error { c.ServiceKey = v; return nil }},
	{"S3_MULTIPART_EXPIRY", "24h", "an S3 multipart upload expires this long after its creation or last part; the collector removes its parts", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			return errors.New("must be a Go duration of at least 1m, such as 24h")
		}
		c.S3MultipartExpiry = d
		return nil
	}},
	{"IMAGE_TRANSFORMATION_ENABLED", "true", "serve /render/image and signed transform URLs, rendering with libvips in process (alias ENABLE_IMAGE_TRANSFORMATION)", boolVar(func(c *Config, b bool) { c.ImageEnabled = b })},
	{"IMAGE_TRANSFORMATION_LIMIT_MIN_SIZE", "1", "smallest width/height a transformation is clamped to (alias IMG_LIMITS_MIN_SIZE)", intVar(func(c *Config, n int) { c.ImageMinSize = n }, 1)},
	{"IMAGE_TRANSFORMATION_LIMIT_MAX_SIZE", "2000", "largest width/height a transformation is clamped to (alias IMG_LIMITS_MAX_SIZE)", intVar(func(c *Config, n int) { c.ImageMaxSize = n }, 1, 10000)},
	{"IMAGE_TRANSFORMATION_MAX_SOURCE_SIZE", "26214400", "largest source image rendered, in bytes; larger ones are refused unread", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return errors.New("must be a positive number of bytes")
		}
		c.ImageMaxSourceSize = n
		return nil
	}},
	{"IMAGE_TRANSFORMATION_MAX_SOURCE_RESOLUTION", "50", "largest source resolution rendered, in megapixels; checked from the header before decoding", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1000 {
			return errors.New("must be a number of megapixels above 0 and at most 1000")
		}
		c.ImageMaxResolution = f
		return nil
	}},
	{"IMAGE_TRANSFORMATION_CONCURRENCY", "0", "image renders at once (0 = one per core)", intVar(func(c *Config, n int) { c.ImageConcurrency = n }, 0)},
	{"IMAGE_TRANSFORMATION_QUEUE_SIZE", "64", "image requests that may wait for a render; beyond, 429 SlowDown", intVar(func(c *Config, n int) { c.ImageQueueSize = n }, 0)},
	{"IMAGE_TRANSFORMATION_QUEUE_TIMEOUT", "15s", "longest wait for a render, then 429 SlowDown (0 = no bound)", durationVar(func(c *Config, d time.Duration) { c.ImageQueueTimeout = d })},
	{"IMAGE_TRANSFORMATION_QUALITY", "80", "encoder quality (20-100) when a transformation sets none", intVar(func(c *Config, n int) { c.ImageQuality = n }, 20, 100)},
	{"IMAGE_TRANSFORMATION_CACHE", "true", "keep rendered variants in the blob store, freed with their source (false = render every request)", boolVar(func(c *Config, b bool) { c.ImageCache = b })},
	{"RATE_LIMITER_ENABLED", "false", "limit requests per client address and /render/image path (alias ENABLE_RATE_LIMITER)", boolVar(func(c *Config, b bool) { c.RateLimiterEnabled = b })},
	{"RATE_LIMITER_RENDER_PATH_MAX_REQ_SEC", "5", "with RATE_LIMITER_ENABLED: requests per second per address and render path (4 s window), then 429 SlowDown", intVar(func(c *Config, n int) { c.RateLimitRender = n }, 1)},
	{"RATE_LIMITER_DRIVER", "memory", "where the limiter counts: memory (per server; redis is not offered)", func(c *Config, v string) error {
		if v != "memory" {
			return errors.New("only memory is supported")
		}
		return nil
	}},
	{"CORS_ALLOWED_ORIGINS", "*", "comma-separated origins browsers may call from (* = any)", func(c *Config, v string) error {
		c.CORSAllowedOrigins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.CORSAllowedOrigins = append(c.CORSAllowedOrigins, o)
			}
		}
		return nil
	}},
}

func intVar(set func(*Config, int), bounds ...int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < bounds[0] || len(bounds) > 1 && n > bounds[1] {
			if len(bounds) > 1 {
				return fmt.Errorf("must be a number from %d to %d", bounds[0], bounds[1])
			}
			return fmt.Errorf("must be a number >= %d", bounds[0])
		}
		set(c, n)
		return nil
	}
}

func boolVar(set func(*Config, bool)) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		set(c, b)
		return nil
	}
}

func durationVar(set func(*Config, time.Duration)) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errors.New("must be a Go duration such as 30s or 2m")
		}
		set(c, d)
		return nil
	}
}

func positiveDurationVar(set func(*Config, time.Duration)) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("must be a positive Go duration such as 10s or 5m")
		}
		set(c, d)
		return nil
	}
}

// aliases are the other names the reference reads some variables under; the first name wins.
var aliases = map[string]string{
	"AUTH_JWT_SECRET":                     "PGRST_JWT_SECRET",
	"PROJECT_REF":                         "TENANT_ID",
	"IMAGE_TRANSFORMATION_ENABLED":        "ENABLE_IMAGE_TRANSFORMATION",
	"IMAGE_TRANSFORMATION_LIMIT_MIN_SIZE": "IMG_LIMITS_MIN_SIZE",
	"IMAGE_TRANSFORMATION_LIMIT_MAX_SIZE": "IMG_LIMITS_MAX_SIZE",
	"RATE_LIMITER_ENABLED":                "ENABLE_RATE_LIMITER",
}

// loadConfig reads the configuration from getenv. Errors name the variable.
func loadConfig(getenv func(string) string) (Config, error) {
	var c Config
	for _, v := range envVars {
		val := getenv(v.name)
		if alias := aliases[v.name]; val == "" && alias != "" {
			val = getenv(alias)
		}
		if val == "" {
			val = v.def
		}
		if err := v.set(&c, val); err != nil {
			if v.name == "JWT_JWKS" { // holds secret keys: never echoed
				return c, fmt.Errorf("%s: %w", v.name, err)
			}
			return c, fmt.Errorf("%s=%q: %w", v.name, val, err)
		}
	}
	if c.DatabaseURL != "" {
		if _, err := url.Parse(c.DatabaseURL); err != nil && !strings.Contains(c.DatabaseURL, "=") {
			return c, fmt.Errorf("DATABASE_URL: not a PostgreSQL URL or keyword/value string")
		}
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("STORAGE_DATA_DIR=%q: %w", c.DataDir, err)
	}
	c.DataDir = abs
	if c.FileBackendPath == "" {
		c.FileBackendPath = filepath.Join(c.DataDir, "blobs")
	}
	if c.Region == "" {
		c.Region = c.S3Region
	}
	if c.Backend == "s3" && c.S3Bucket == "" {
		return c, errors.New("STORAGE_S3_BUCKET is required when STORAGE_BACKEND=s3")
	}
	return c, nil
}

// printEnvHelp writes the table of environment variables with their defaults.
func printEnvHelp(w io.Writer) {
	fmt.Fprintln(w, "Environment:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range envVars {
		def := v.def
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.name, def, v.help)
	}
	tw.Flush()
}

// secretFile is where the embedded default keeps its generated JWT secret.
func (c Config) secretFile() string { return filepath.Join(c.DataDir, "jwt_secret") }

// embedded reports whether the configuration selects the embedded PostgreSQL cluster.
func (c Config) embedded() bool { return c.DatabaseURL == "" }
