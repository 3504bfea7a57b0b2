-- 015 S3 protocol: the S3 door's own listing and delete shapes (sql/api/s3.sql:
-- storage.s3_list_objects, storage.s3_delete_object, storage.s3_delete_objects and its
-- SECURITY DEFINER helper storage_internal.objects_existing). storage.object_copy onto itself
-- with copy_metadata false now rewrites the metadata in place (S3 CopyObject with REPLACE)
-- instead of changing nothing. Every statement is CREATE OR REPLACE; down drops the new
-- functions and reinstalls 014. No table locks.
{{ install_snapshot "015" }}

---- create above / drop below ----

drop function storage.s3_list_objects(text, text, text, text, integer),
  storage.s3_delete_object(text, text), storage.s3_delete_objects(text, text[]),
  storage_internal.objects_existing(text, text[]);
{{ install_snapshot "014" }}
