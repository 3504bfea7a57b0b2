// Package blob is the home of the blob stores: a small interface with a local-directory
// backend and an S3 backend, tested by one conformance suite. Rows in storage.objects will
// point at blobs by key, each key written once and never overwritten. Buckets need no bytes,
// so the package holds nothing yet; the objects work fills it.
package blob
