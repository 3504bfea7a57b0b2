-- The collector's side of the blob queue (storage.blobs_freed). The server's collector, one at a
-- time across all servers, calls blob_collect_next for a batch of blobs it may delete, deletes
-- them from the blob store, and reports each outcome with blob_collect_done or
-- blob_collect_failed. Entries are removed only after their blob is gone, so a crash between
-- the two steps repeats a delete (harmless) and never loses one. SECURITY DEFINER, callable by
-- the owner and the servers' role storage_server only: request roles have no right on the
-- bookkeeping tables.

-- storage_internal.blob_collect_next(retention, max_count) → setof text
-- Returns up to max_count distinct versions whose blobs may be deleted now: queued at least
-- retention ago, not waiting out a retry backoff, and referenced by no row. An entry whose
-- version a row references again (a copy still shares the blob, or a restore brought a row
-- back) is dropped instead: that blob stays.
create or replace function storage_internal.blob_collect_next(retention interval, max_count integer)
  returns setof text
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  v text;
begin
  for v in
    select distinct f.version
    from (select f.version from storage.blobs_freed f
          where f.freed_at <= now() - retention
            and (f.retry_at is null or f.retry_at <= now())
          order by f.freed_at
          limit max_count) f
    -- A version queued again while an older entry waits out its backoff waits too.
    where not exists (select from storage.blobs_freed g where g.version = f.version and g.retry_at > now())
  loop
    -- Check and drop in one statement (one snapshot): an entry queued by a transaction that
    -- removes the last row and commits meanwhile is not seen here, so it stays queued.
    delete from storage.blobs_freed f
    where f.version = v and exists (select from storage.objects o where o.version = v);
    if not found then
      return next v;
    end if;
  end loop;
end
$$;
revoke all on function storage_internal.blob_collect_next(interval, integer) from public;
grant execute on function storage_internal.blob_collect_next(interval, integer) to storage_server;

-- storage_internal.blob_collect_done(versions) → bigint: the blobs of versions are gone from
-- the store; their inline bytes (storage.inline_blobs) and queue entries go too. Returns the
-- bytes their rows recorded (the freed bytes the metrics count; uploads that never became rows
-- recorded none).
create or replace function storage_internal.blob_collect_done(versions text[]) returns bigint
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    with gone as (
      delete from storage.blobs_freed f where f.version = any (blob_collect_done.versions)
      returning f.version, f.size
    ), inline as (
      delete from storage.inline_blobs i where i.version = any (blob_collect_done.versions)
    )
    -- A version queued twice was freed once.
    select coalesce(sum(s), 0)::bigint from (select max(g.size) as s from gone g group by g.version) v
  $$;
revoke all on function storage_internal.blob_collect_done(text[]) from public;
grant execute on function storage_internal.blob_collect_done(text[]) to storage_server;

-- storage_internal.blob_collect_failed(version, error) → void: deleting the blob failed; retry after
-- an exponential backoff (2 s, 4 s, … capped at one hour) and keep the error for operators.
create or replace function storage_internal.blob_collect_failed(version text, error text) returns void
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    update storage.blobs_freed f
    set attempts = f.attempts + 1,
        last_error = blob_collect_failed.error,
        retry_at = now() + least(interval '1 second' * power(2, least(f.attempts + 1, 12)), interval '1 hour')
    where f.version = blob_collect_failed.version
  $$;
revoke all on function storage_internal.blob_collect_failed(text, text) from public;
grant execute on function storage_internal.blob_collect_failed(text, text) to storage_server;

-- storage_internal.blob_upload_expire(age, version) → setof text
-- Ends the uploads in flight that started more than age ago and never committed (the server
-- writing them crashed or was killed), or only the one of version when given: their entries
-- move to the queue, so the collector deletes whatever part of the blob was written. Returns
-- their versions. Resumable and S3 multipart uploads are not ended here but by their own
-- expiry (storage_internal.resumable_expire, storage_internal.s3_multipart_expire).
-- A later commit of such an upload is refused (storage_internal.object_upload_commit
-- requires the entry).
create or replace function storage_internal.blob_upload_expire(age interval, version text default null) returns setof text
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    with gone as (
      delete from storage.blob_uploads u
      where u.started_at < now() - blob_upload_expire.age
        and (blob_upload_expire.version is null or u.version = blob_upload_expire.version)
        -- Resumable and S3 multipart uploads live until their own expiry
        -- (storage_internal.resumable_expire, storage_internal.s3_multipart_expire).
        and not exists (select from storage.resumable_uploads r where r.version = u.version)
        and not exists (select from storage.s3_multipart_uploads m where m.version = u.version)
      returning u.version, u.bucket_id
    )
    insert into storage.blobs_freed (version, bucket_id)
    select g.version, g.bucket_id from gone g
    where not exists (select from storage.objects o where o.version = g.version)
    returning version
  $$;
revoke all on function storage_internal.blob_upload_expire(interval, text) from public;
grant execute on function storage_internal.blob_upload_expire(interval, text) to storage_server;

comment on function storage_internal.blob_collect_next(interval, integer) is
  'Internal, for the collector (storage_server): up to max_count queued blobs freed at least retention ago that no row references; entries of blobs referenced again are dropped.';
comment on function storage_internal.blob_collect_done(text[]) is
  'Internal, for the collector (storage_server): these blobs are gone from the store; their queue entries go. Returns the bytes their rows recorded.';

-- storage_internal.collector_backlog(retention) → (queued, due, oldest_freed_at, empty_jobs):
-- the collector's work as metrics show it: blobs queued, those past the retention window (due
-- for deletion now), when the oldest was queued, and bucket-empty jobs not finished.
create or replace function storage_internal.collector_backlog(retention interval)
  returns table (queued bigint, due bigint, oldest_freed_at timestamptz, empty_jobs bigint)
  language sql
  stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select (select count(*) from storage.blobs_freed),
           (select count(*) from storage.blobs_freed f where f.freed_at <= now() - collector_backlog.retention),
           (select min(f.freed_at) from storage.blobs_freed f),
           (select count(*) from storage.bucket_empty_jobs j where j.finished_at is null)
  $$;
revoke all on function storage_internal.collector_backlog(interval) from public;
grant execute on function storage_internal.collector_backlog(interval) to storage_server;
comment on function storage_internal.collector_backlog(interval) is
  'Internal, for the servers'' metrics (storage_server): blobs queued, those due for deletion (past retention), the oldest''s queue time, unfinished bucket-empty jobs.';
comment on function storage_internal.blob_collect_failed(text, text) is
  'Internal, for the collector (storage_server): deleting a blob failed; retry after an exponential backoff.';
comment on function storage_internal.blob_upload_expire(interval, text) is
  'Internal, for the collector (storage_server): ends uploads in flight older than age (their server died) and queues their blobs.';
