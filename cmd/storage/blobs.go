package main

import (
	"context"
	"fmt"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
)

// openBlobs opens the blob store STORAGE_BACKEND selects.
func openBlobs(ctx context.Context, cfg Config) (blob.Store, error) {
	switch cfg.Backend {
	case "s3":
		return openS3(ctx, cfg)
	default:
		st, err := file.New(cfg.FileBackendPath)
		if err != nil {
			return nil, fmt.Errorf("STORAGE_FILE_BACKEND_PATH: %w", err)
		}
		return st, nil
	}
}
