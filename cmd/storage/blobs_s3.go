package main

import (
	"context"
	"errors"

	"github.com/pgstorage/storage/blob"
)

func openS3(context.Context, Config) (blob.Store, error) {
	return nil, errors.New("STORAGE_BACKEND=s3: not wired yet")
}
