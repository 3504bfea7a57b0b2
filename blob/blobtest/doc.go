// Package blobtest is the conformance suite every blob.Store runs: the file and S3 backends must
// behave identically (round trips, ranges, never overwriting, failed Puts leaving nothing,
// refused keys, bounded memory, listings in byte order of keys, leftovers of Puts in
// progress), so the server never has to care which one it has. RunResumable does the same for
// blob.Resumable: blobs built by Appends over many requests, crash-safe and memory-flat; and
// RunMultipart for blob.Multipart: blobs built from numbered parts put in any order.
package blobtest
