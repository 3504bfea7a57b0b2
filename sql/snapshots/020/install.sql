-- The storage SQL API: one function per operation, named noun_verb. This is the canonical
-- source: edit the files here, then `make api/snapshot` freezes this package into the next
-- migration (sql/snapshots/NNN + sql/NNN_install_api.sql). Every statement is CREATE OR
-- REPLACE (or COMMENT/GRANT), so installing over an older snapshot is safe.
--
-- Two schemas:
--   storage           what callers use: the API functions (bucket_*, object_*, url_sign*),
--                     signing_secret_set for the owner, and the policy helpers of migration
--                     004 (foldername, filename, extension, operation, allow_*_operation).
--   storage_internal  everything else: checks, SECURITY DEFINER helpers, the server's upload
--                     steps, the collector's and the event dispatcher's functions, trigger
--                     functions. Request roles have
--                     USAGE and execute exactly what the API they call needs; see the audit
--                     table in SECURITY.md.
--
-- SQLSTATEs raised (class ST is ours; the proxy maps each to one HTTP error in proxy/errors.go):
--   ST001 NoSuchBucket        ST002 NoSuchKey            ST003 BucketAlreadyExists
--   ST004 KeyAlreadyExists    ST005 ResourceNotEmpty     ST006 InvalidBucketName
--   ST007 InvalidKey          ST008 EntityTooLarge       ST009 InvalidMimeType
--   ST010 InvalidRequest      ST011 AccessDenied         ST012 InvalidParameter
--   ST013 EmptyBucketTooLarge ST014 FeatureNotEnabled
--   ST015 UploadOffsetConflict  ST016 NoSuchUpload         ST017 InvalidPart
--   ST018 InvalidPartOrder      ST019 EntityTooSmall       ST020 ResourceReferenced
--   ST021 OperationAborted
-- plus PostgreSQL's own 42501 (RLS or privilege denial, and the SECURITY DEFINER helpers
-- refusing a caller) and 23503 (foreign key).

{{ template "called_by.sql" . }}
{{ template "validation.sql" . }}
{{ template "object_validation.sql" . }}
{{ template "triggers.sql" . }}
{{ template "blob_upload.sql" . }}
{{ template "bucket_object_count.sql" . }}
{{ template "bucket_create.sql" . }}
{{ template "bucket_get.sql" . }}
{{ template "bucket_list.sql" . }}
{{ template "bucket_update.sql" . }}
{{ template "bucket_delete.sql" . }}
{{ template "bucket_empty.sql" . }}
{{ template "object_upload_prepare.sql" . }}
{{ template "object_upload_commit.sql" . }}
{{ template "resumable.sql" . }}
{{ template "object_info.sql" . }}
{{ template "object_delete.sql" . }}
{{ template "object_delete_many.sql" . }}
{{ template "object_delete_prefix.sql" . }}
{{ template "url_sign.sql" . }}
{{ template "object_list.sql" . }}
{{ template "object_move_copy.sql" . }}
{{ template "s3.sql" . }}
{{ template "s3_multipart.sql" . }}
{{ template "blob_collect.sql" . }}
{{ template "lease.sql" . }}
{{ template "events.sql" . }}
