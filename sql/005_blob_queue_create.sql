-- 005 blob queue: the bookkeeping that keeps rows and blobs in agreement.
-- storage.blob_uploads holds an entry per upload in flight (blob being written, row not yet
-- committed); storage.blobs_freed is the durable queue of blobs no row references any more,
-- filled in the same transaction as the DELETE/UPDATE/TRUNCATE that freed them (plain SQL
-- deletes too).
-- A collector drains both later. Reversible (drops both tables and the triggers). Takes a
-- SHARE ROW EXCLUSIVE lock on storage.objects briefly, to add the triggers and index.

create table storage.blob_uploads (
  version    text primary key,
  bucket_id  text not null,
  name       text not null,
  started_at timestamptz not null default now()
);
comment on table storage.blob_uploads is
  'Uploads in flight: the blob under version is being written and has no row yet. An entry older than the grace period marks a blob an interrupted upload left behind.';

create table storage.blobs_freed (
  id        bigint generated always as identity primary key,
  version   text not null,
  bucket_id text,
  freed_at  timestamptz not null default now()
);
create index blobs_freed_freed_at on storage.blobs_freed (freed_at);
comment on table storage.blobs_freed is
  'Blobs no object row references any more, queued for deletion from the blob store after the retention window.';

-- Only the server (service_role) and the owner touch the bookkeeping; RLS without policies
-- hides it from everyone else even if privileges were granted by mistake.
alter table storage.blob_uploads enable row level security;
alter table storage.blobs_freed enable row level security;
revoke all on storage.blob_uploads, storage.blobs_freed from public, anon, authenticated;
grant select, insert, delete on storage.blob_uploads, storage.blobs_freed to service_role;

-- The freeing triggers look rows up by version (several rows may share one blob once copies
-- share bytes).
create index objects_version on storage.objects (version);

-- storage.objects_free_blobs queues the versions of deleted or replaced rows that no row
-- references any more. SECURITY DEFINER: the lookup must see every row whatever the caller's
-- RLS (a hidden row still holds its blob), and callers need no right on the queue.
create function storage.objects_free_blobs() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  v text;
begin
  -- Two transactions removing the last two rows of one blob would each still see the other's
  -- row and neither would queue it: serialize per version (in a fixed order, so no deadlock),
  -- and check afresh once the lock is held (READ COMMITTED: a new snapshot per statement).
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

create trigger objects_free_blobs_on_delete
  after delete on storage.objects
  referencing old table as old_rows
  for each statement execute function storage.objects_free_blobs();
create trigger objects_free_blobs_on_update
  after update on storage.objects
  referencing old table as old_rows
  for each statement execute function storage.objects_free_blobs();

-- TRUNCATE skips row triggers: queue every blob first (only the owner may truncate).
create function storage.objects_free_all_blobs() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into storage.blobs_freed (version, bucket_id)
  select distinct o.version, o.bucket_id from storage.objects o where o.version is not null;
  return null;
end
$$;
create trigger objects_free_blobs_on_truncate
  before truncate on storage.objects
  for each statement execute function storage.objects_free_all_blobs();

---- create above / drop below ----

drop trigger objects_free_blobs_on_truncate on storage.objects;
drop function storage.objects_free_all_blobs();

drop trigger objects_free_blobs_on_update on storage.objects;
drop trigger objects_free_blobs_on_delete on storage.objects;
drop function storage.objects_free_blobs();
drop index storage.objects_version;
drop table storage.blobs_freed;
drop table storage.blob_uploads;
