// Package blob is where object bytes live: the Store interface, a local-directory backend
// (blob/file) and an S3 backend (blob/s3), both run through one conformance suite
// (blob/blobtest). Rows in storage.objects point at blobs by key; a key is written once and
// never overwritten, so a row and its bytes can never disagree.
package blob
