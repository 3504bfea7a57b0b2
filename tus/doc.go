// Package tus serves resumable uploads (TUS 1.0.0, the protocol Supabase's clients use for
// large files) beside the REST routes: /upload/resumable[/{id}] with a JWT, and
// /upload/resumable/sign[/{id}] with a signed upload token, under / and /storage/v1.
//
// The protocol is this package's; the semantics are the SQL API's. An upload is a row of
// storage.resumable_uploads created, advanced and completed by the storage_internal.resumable_*
// functions, run as the uploader through the proxy's database seam: the checks of a REST
// upload (bucket, size, MIME, RLS dry-run, duplicate) at creation and again at every PATCH, and
// at the last byte the REST uploads' own commit. The bytes grow as a partial blob in the blob
// store (blob.Resumable) under the object's version, and become its blob at completion.
//
// One writer per upload, across servers: a PATCH holds a PostgreSQL advisory lock on the
// upload (the reference's key, so both can share a database) for as long as its body streams.
// What a PATCH stored before its client went away is durable and recorded, so HEAD reports
// exactly the offset to resume from.
package tus
