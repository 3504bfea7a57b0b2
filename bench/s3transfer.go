package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// The S3 protocol's large transfers: the AWS SDK's upload manager putting bigSize in 16 MiB
// parts, 8 at a time (a multipart upload), and one GetObject reading it back. The client
// signs in session-token mode (the service key as the token), which needs no key pair in the
// server's environment.

const (
	s3BigKey       = "big/s3-1g"
	s3PartSize     = 16 << 20
	s3Concurrency  = 8
	s3UploadName   = "S3 upload %s (upload manager, 8 × 16 MiB parts)"
	s3DownloadName = "S3 download %s (GetObject)"
)

func s3UploadLabel(size int64) string   { return fmt.Sprintf(s3UploadName, sizeName(size)) }
func s3DownloadLabel(size int64) string { return fmt.Sprintf(s3DownloadName, sizeName(size)) }

// s3Client is an SDK client of the server's S3 door.
func s3Client(s *server) *awss3.Client {
	return awss3.New(awss3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.base + "/s3"),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("storage-single-tenant", s.anon, s.service),
		HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: s3Concurrency, DisableCompression: true}},
		Retryer:      aws.NopRetryer{},
	})
}

// uploadS3 puts size bytes through the upload manager.
func uploadS3(ctx context.Context, s *server, size int64) transferResult {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	w := watchRSS(s.proc.pid())
	up := manager.NewUploader(s3Client(s), func(u *manager.Uploader) {
		u.PartSize, u.Concurrency = s3PartSize, s3Concurrency
	})
	start := time.Now()
	_, err := up.Upload(ctx, &awss3.PutObjectInput{Bucket: aws.String(privateBucket), Key: aws.String(s3BigKey),
		Body: &patternReader{remaining: size}, ContentType: aws.String("application/octet-stream")})
	res := transferResult{elapsed: time.Since(start), bytes: size, err: err}
	res.rss = w.done()
	return res
}

// downloadS3 reads the object back with one GetObject and discards it, checking the length.
func downloadS3(ctx context.Context, s *server, size int64) transferResult {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	w := watchRSS(s.proc.pid())
	res := transferResult{}
	start := time.Now()
	out, err := s3Client(s).GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(privateBucket), Key: aws.String(s3BigKey)})
	if err == nil {
		buf := make([]byte, 1<<20)
		for {
			n, rerr := out.Body.Read(buf)
			res.bytes += int64(n)
			if rerr != nil {
				if rerr != io.EOF {
					err = rerr
				}
				break
			}
		}
		out.Body.Close()
		if err == nil && res.bytes != size {
			err = fmt.Errorf("downloaded %d bytes, want %d", res.bytes, size)
		}
	}
	res.elapsed, res.err = time.Since(start), err
	res.rss = w.done()
	return res
}
