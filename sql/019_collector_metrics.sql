-- 019 collector metrics, events of any size: a freed blob is queued with the size its row
-- recorded (storage.blobs_freed.size, NULL when none), so that
-- storage_internal.blob_collect_done can return the bytes a batch freed;
-- storage_internal.collector_backlog reports the queue and the unfinished bucket-empty jobs for
-- the servers' metrics. The event triggers insert their rows straight from the transition
-- tables (018's built one jsonb array per statement first, which a statement of a million rows
-- overflows: 54000), so storage_internal.events_record goes; notifications come from a row
-- trigger on storage.events itself, which fires only when storage.events_notify is on. Reversible. Locks: ACCESS
-- EXCLUSIVE on storage.blobs_freed briefly (a nullable column without default: no rewrite).

alter table storage.blobs_freed add column size bigint;
comment on column storage.blobs_freed.size is
  'The size the freed row''s metadata recorded (NULL when none: an upload that never became a row).';
-- Its return type changes (void → bigint): replaced, not redefined.
drop function storage_internal.blob_collect_done(text[]);
{{ install_snapshot "019" }}
drop function storage_internal.events_record(jsonb);
create trigger events_notify
  after insert on storage.events
  for each row
  when (coalesce(current_setting('storage.events_notify', true), '') in ('on', 'true', '1'))
  execute function storage_internal.events_notify();

---- create above / drop below ----

drop trigger events_notify on storage.events;

drop function storage_internal.collector_backlog(interval);
drop function storage_internal.blob_collect_done(text[]);
{{ install_snapshot "018" }}
drop function storage_internal.metadata_size(jsonb), storage_internal.event_context(), storage_internal.events_notify(),
  storage_internal.event_payload(text, text, text, text, jsonb, jsonb, text, jsonb);
alter table storage.blobs_freed drop column size;
