-- 008 blob lifecycle: the queue the collector drains, and the durable jobs that empty buckets.
-- - The freeing triggers no longer lock: every blob a statement stops referencing is queued,
--   and the collector decides, when it deletes, whether a row still uses it. The per-blob
--   advisory locks of 005 filled PostgreSQL's lock table on large deletes ("out of shared
--   memory" past a few thousand rows in one statement); a queue entry for a blob that is still
--   shared (a copy) costs one index probe when the collector reaches it.
-- - storage.blobs_freed gains retry bookkeeping (attempts, retry_at, last_error) and an index
--   on version.
-- - storage.bucket_empty_jobs: one row per POST /bucket/{id}/empty or storage.bucket_empty
--   call, worked in batches by the servers, progress readable in SQL.
-- Reversible. Takes a SHARE ROW EXCLUSIVE lock on storage.objects briefly (trigger swap).

alter table storage.blobs_freed
  add column attempts   integer not null default 0,
  add column retry_at   timestamptz,
  add column last_error text;
comment on column storage.blobs_freed.retry_at is
  'When the collector may try again after a failed delete (exponential backoff); NULL = as soon as the retention window has passed.';
create index blobs_freed_version on storage.blobs_freed (version);

-- Deleted rows: queue each distinct version. No "still referenced?" check here: two
-- transactions removing the last two rows of one blob would each see the other's row and
-- neither would queue it. The collector checks at delete time, when every such transaction has
-- ended.
create or replace function storage.objects_free_blobs() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into storage.blobs_freed (version, bucket_id)
  select distinct on (o.version) o.version, o.bucket_id
  from old_rows o
  where o.version is not null;
  return null;
end
$$;

-- Updated rows: queue the versions the statement dropped (an overwrite), not those it kept (a
-- move or a metadata change). Compared by version, not by row id, so an UPDATE that changes
-- ids is safe too.
create function storage.objects_free_replaced_blobs() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into storage.blobs_freed (version, bucket_id)
  select distinct on (o.version) o.version, o.bucket_id
  from old_rows o
  where o.version is not null
    and not exists (select from new_rows n where n.version = o.version);
  return null;
end
$$;

drop trigger objects_free_blobs_on_update on storage.objects;
create trigger objects_free_blobs_on_update
  after update on storage.objects
  referencing old table as old_rows new table as new_rows
  for each statement execute function storage.objects_free_replaced_blobs();

create table storage.bucket_empty_jobs (
  id             bigint generated always as identity primary key,
  bucket_id      text not null,
  created_before timestamptz not null,
  role           text not null,
  settings       jsonb not null default '{}',
  requested_at   timestamptz not null default now(),
  started_at     timestamptz,
  finished_at    timestamptz,
  deleted        bigint not null default 0,
  last_name      text,
  attempts       integer not null default 0,
  error          text
);
create index bucket_empty_jobs_pending on storage.bucket_empty_jobs (id) where finished_at is null;
comment on table storage.bucket_empty_jobs is
  'Bucket empties in progress and done. A job deletes, as the role and request settings that asked for it (so RLS applies as it would have), every object of bucket_id created before created_before, in batches ordered by name (last_name is the resume point). deleted counts the rows gone so far; finished_at is set when done, or after repeated failures (error says why).';
alter table storage.bucket_empty_jobs enable row level security;
revoke all on storage.bucket_empty_jobs from public, anon, authenticated;
grant select on storage.bucket_empty_jobs to service_role;

---- create above / drop below ----

drop table storage.bucket_empty_jobs;

drop trigger objects_free_blobs_on_update on storage.objects;
drop function storage.objects_free_replaced_blobs();
create trigger objects_free_blobs_on_update
  after update on storage.objects
  referencing old table as old_rows
  for each statement execute function storage.objects_free_blobs();

create or replace function storage.objects_free_blobs() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  v text;
begin
  for v in select distinct o.version from old_rows o where o.version is not null order by 1 loop
    perform pg_advisory_xact_lock(hashtext('storage.blob:' || v));
  end loop;
  insert into storage.blobs_freed (version, bucket_id)
  select distinct o.version, o.bucket_id
  from old_rows o
  where o.version is not null
    and not exists (select from storage.objects x where x.version = o.version);
  return null;
end
$$;

drop index storage.blobs_freed_version;
alter table storage.blobs_freed
  drop column last_error,
  drop column retry_at,
  drop column attempts;
