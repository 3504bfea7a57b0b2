-- 009 install api: the SQL API of sql/api frozen in sql/snapshots/009. New since 007:
-- storage.object_delete_prefix; bucket_empty queues a durable job and returns its id
-- (bucket_empty_enqueue, bucket_empty_work); the collector's queue functions
-- (blob_collect_next, _done, _failed, blob_upload_expire); object_upload_commit refuses an
-- upload whose in-flight entry is gone. bucket_empty changes its return type, so it is dropped
-- first; everything else is CREATE OR REPLACE. Down reinstalls 007. No table locks.
drop function storage.bucket_empty(text);
{{ install_snapshot "009" }}

---- create above / drop below ----

drop function storage.blob_upload_expire(interval, text);
drop function storage.blob_collect_failed(text, text);
drop function storage.blob_collect_done(text[]);
drop function storage.blob_collect_next(interval, integer);
drop function storage.object_delete_prefix(text, text, bigint);
drop function storage.bucket_empty_work(integer);
drop function storage.bucket_empty_enqueue(text);
drop function storage.bucket_empty(text);
{{ install_snapshot "007" }}
