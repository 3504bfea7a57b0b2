-- 021 inline small objects: storage.inline_blobs holds the bytes of small objects, keyed by
-- version like a blob in the blob store, written in the upload's own transaction
-- (storage_internal.object_upload_inline; the server inlines bodies up to STORAGE_INLINE_MAX).
-- Request roles read them under a row policy (an object row they may read, or one of a public
-- bucket, holds the version) and never write them; the collector's blob_collect_done removes
-- them with the version's queue entry. Reversible only while no object is inline (the down
-- migration refuses otherwise: those bytes exist nowhere else). Locks: none on existing tables.

create table storage.inline_blobs (
  version text primary key,
  data    bytea not null
);
comment on table storage.inline_blobs is
  'The bytes of small objects, by version (storage.objects.version), stored in PostgreSQL instead of the blob store; freed like blobs (storage.blobs_freed).';
alter table storage.inline_blobs enable row level security;
revoke all on storage.inline_blobs from public, anon, authenticated, service_role;
grant select on storage.inline_blobs to anon, authenticated, service_role;
{{ install_snapshot "021" }}
create policy inline_blobs_read on storage.inline_blobs for select
  using (storage_internal.inline_blob_readable(version));

---- create above / drop below ----

do $$
begin
  if exists (select from storage.inline_blobs) then
    raise exception 'storage.inline_blobs holds the bytes of small objects, which exist nowhere else: copy them to the blob store (or delete those objects) before migrating below 021';
  end if;
end
$$;
drop policy inline_blobs_read on storage.inline_blobs;
drop function storage_internal.object_upload_inline(text, text, boolean, text, bytea, text, text, jsonb, text),
  storage_internal.inline_blob_put(text, bytea),
  storage_internal.inline_blob_readable(text), storage_internal.version_public(text),
  storage_internal.object_write_limits(text, text, text, bigint);
{{ install_snapshot "020" }}
drop table storage.inline_blobs;
