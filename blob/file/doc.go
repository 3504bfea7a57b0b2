// Package file is the blob store that keeps one file per blob under a root directory, the
// default backend (`<data>/blobs`). A key maps to root/key directly, "/" making
// subdirectories; the store does no sharding of its own, so callers that write many blobs pick
// keys like "ab/abcdef…" to keep directories small. Writes go to a temporary file in root/.tmp
// (TempDir) and are linked into place only once complete and durable, so a key never shows a
// partial blob and is never overwritten. A temporary file left there by a crash is a
// Leftover; List walks the tree (or the directory a prefix names) in byte order of keys,
// skipping root/.tmp. Directories stay when their blobs are deleted, except a variant's
// directory (blob.VariantPrefix, one per rendered version), which goes with its last variant.
//
// Resumable uploads (blob.Resumable) append to one file per upload, root/.tmp/partial/key,
// fsynced after each Append and linked under key by Finish; until then it is a Leftover with
// its Key.
//
// Multipart uploads (blob.Multipart) keep their parts as files in one directory per upload,
// root/.tmp/multipart/key, each written to a temporary file, fsynced and renamed into place;
// CompleteMultipart copies them once, in order, into a new blob the way Put makes one. Until
// then the upload is a Leftover with its Key. See multipart.go.
package file
