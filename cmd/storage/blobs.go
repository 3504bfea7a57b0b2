package main

import (
	"context"
	"fmt"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/blob/s3"
)

// openBlobs opens the blob store STORAGE_BACKEND selects. The s3 backend checks its bucket is
// reachable, so a wrong endpoint, bucket or key fails at start-up, not at the first upload.
func openBlobs(ctx context.Context, cfg Config) (blob.Store, error) {
	if cfg.Backend == "s3" {
		st, err := s3.New(ctx, s3.Config{
			Bucket:          cfg.S3Bucket,
			Endpoint:        cfg.S3Endpoint,
			Region:          cfg.S3Region,
			ForcePathStyle:  cfg.S3ForcePathStyle,
			AccessKeyID:     cfg.S3AccessKeyID,
			SecretAccessKey: cfg.S3SecretAccessKey,
			SpoolDir:        cfg.S3SpoolDir,
		})
		if err != nil {
			return nil, fmt.Errorf("STORAGE_BACKEND=s3 (bucket %q at %q): %s", cfg.S3Bucket, cfg.S3Endpoint, oneLine(err))
		}
		return st, nil
	}
	st, err := file.New(cfg.FileBackendPath)
	if err != nil {
		return nil, fmt.Errorf("STORAGE_FILE_BACKEND_PATH: %w", err)
	}
	return st, nil
}
