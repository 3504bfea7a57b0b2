-- 019 collector metrics: a freed blob is queued with the size its row recorded
-- (storage.blobs_freed.size, NULL when none), so that storage_internal.blob_collect_done can
-- return the bytes a batch freed; storage_internal.collector_backlog reports the queue and the
-- unfinished bucket-empty jobs for the servers' metrics. Reversible. Locks: ACCESS EXCLUSIVE on
-- storage.blobs_freed briefly (a nullable column without default: no rewrite).

alter table storage.blobs_freed add column size bigint;
comment on column storage.blobs_freed.size is
  'The size the freed row''s metadata recorded (NULL when none: an upload that never became a row).';
-- Its return type changes (void → bigint): replaced, not redefined.
drop function storage_internal.blob_collect_done(text[]);
{{ install_snapshot "019" }}

---- create above / drop below ----

drop function storage_internal.collector_backlog(interval);
drop function storage_internal.blob_collect_done(text[]);
{{ install_snapshot "018" }}
drop function storage_internal.metadata_size(jsonb);
alter table storage.blobs_freed drop column size;
