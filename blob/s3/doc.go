// Package s3 is the blob store on an S3-compatible service (AWS S3, MinIO, R2, versitygw…),
// used with STORAGE_BACKEND=s3. Blobs are objects under Config.Prefix in one bucket.
//
// Puts stream: a body of known size up to one part goes out as a single PutObject straight
// from the reader (unsigned payload, no buffering); anything else as a multipart upload read
// into at most Concurrency part buffers, which a failure aborts so no parts linger. Every
// write is conditional (If-None-Match: *), so a key is never overwritten. List is
// ListObjectsV2 under the prefix; the leftovers of interrupted Puts are its unfinished
// multipart uploads. Package s3test starts a real S3 server (versitygw) for tests.
//
// Resumable uploads (blob.Resumable) build a multipart upload of the key over many Appends,
// each spooling one part at a time to a temporary file on local disk (os.TempDir, $TMPDIR),
// never to memory; bytes that do not yet make a part wait in a tail object under
// PartialPrefix, which no key reaches. See resumable.go.
//
// Multipart uploads (blob.Multipart) are native multipart uploads of the blob's object: parts
// stream to UploadPart (or are copied with UploadPartCopy), and CompleteMultipartUpload joins
// them in S3, conditionally like every write. See multipart.go.
package s3
