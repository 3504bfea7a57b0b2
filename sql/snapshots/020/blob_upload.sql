-- Uploads in flight (storage.blob_uploads). An upload is recorded under a fresh random version
-- before its bytes move (storage_internal.object_upload_prepare), and that entry is the only
-- thing that lets a row take a version no row it may read has: the objects_guard trigger
-- checks it when the row is written, storage_internal.object_upload_commit ends it with the
-- row, and the collector expires entries whose server died. So a row can point only at bytes
-- written for its own key (or, as a copy, at the bytes of an object its writer may read), and
-- a version cannot be guessed (122 random bits) nor read by anyone but the uploader.

-- storage_internal.blob_upload_begin(bucket_id, name) → text
-- Records an upload in flight for bucket_id/name under a fresh random version and returns it.
-- SECURITY DEFINER so request roles need no right on storage.blob_uploads; it works only for
-- storage_internal.object_upload_prepare and storage_internal.resumable_create (each runs the
-- bucket, size, MIME, key and policy checks in the same transaction) and
-- storage_internal.object_write_check (inside its rolled-back policy dry-run): a direct call
-- is refused (42501), so no caller can fill the table with entries of its own.
create or replace function storage_internal.blob_upload_begin(bucket_id text, name text) returns text
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _version text;
begin
  if not storage_internal.called_by('storage_internal.object_upload_prepare', 'storage_internal.object_write_check',
                                    'storage_internal.resumable_create', 'storage_internal.s3_multipart_create') then
    raise exception using errcode = '42501',
      message = 'storage_internal.blob_upload_begin may only be called by storage_internal.object_upload_prepare, storage_internal.resumable_create and storage_internal.s3_multipart_create';
  end if;
  insert into storage.blob_uploads (version, bucket_id, name)
  values (replace(gen_random_uuid()::text, '-', ''), blob_upload_begin.bucket_id, blob_upload_begin.name)
  returning version into _version;
  return _version;
end
$$;
revoke all on function storage_internal.blob_upload_begin(text, text) from public;
grant execute on function storage_internal.blob_upload_begin(text, text) to anon, authenticated, service_role;
comment on function storage_internal.blob_upload_begin(text, text) is
  'Internal, SECURITY DEFINER: records an upload in flight under a fresh version, for storage_internal.object_upload_prepare and storage_internal.resumable_create only (42501 otherwise).';

-- storage_internal.blob_upload_active(version, bucket_id, name) → boolean
-- Whether the upload of version is still in flight for bucket_id/name (not committed, aborted
-- or expired). SECURITY DEFINER; for storage_internal.object_upload_commit and the
-- objects_guard trigger only (42501 otherwise).
create or replace function storage_internal.blob_upload_active(version text, bucket_id text, name text) returns boolean
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  -- Its entry by key, never by reading the queue: see storage_internal.object_upload_commit.
  set enable_seqscan = off
  set jit = off
  as $$
begin
  if not storage_internal.called_by('storage_internal.object_upload_commit', 'storage_internal.objects_guard') then
    raise exception using errcode = '42501',
      message = 'storage_internal.blob_upload_active may only be called by storage_internal.object_upload_commit and the objects_guard trigger';
  end if;
  return exists (select from storage.blob_uploads u
                 where u.version = blob_upload_active.version
                   and u.bucket_id = blob_upload_active.bucket_id and u.name = blob_upload_active.name);
end
$$;
revoke all on function storage_internal.blob_upload_active(text, text, text) from public;
grant execute on function storage_internal.blob_upload_active(text, text, text) to anon, authenticated, service_role;
comment on function storage_internal.blob_upload_active(text, text, text) is
  'Internal, SECURITY DEFINER: whether an upload is still in flight for its key, for storage_internal.object_upload_commit and the objects_guard trigger only (42501 otherwise).';

-- storage_internal.blob_upload_end(version) → boolean
-- Ends the upload of version in flight because its row has been written; reports whether it
-- was still in flight. SECURITY DEFINER; for storage_internal.object_upload_commit only.
create or replace function storage_internal.blob_upload_end(version text) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  set enable_seqscan = off
  set jit = off
  as $$
begin
  if not storage_internal.called_by('storage_internal.object_upload_commit') then
    raise exception using errcode = '42501',
      message = 'storage_internal.blob_upload_end may only be called by storage_internal.object_upload_commit';
  end if;
  delete from storage.blob_uploads u where u.version = blob_upload_end.version;
  return found;
end
$$;
revoke all on function storage_internal.blob_upload_end(text) from public;
grant execute on function storage_internal.blob_upload_end(text) to anon, authenticated, service_role;
comment on function storage_internal.blob_upload_end(text) is
  'Internal, SECURITY DEFINER: ends an upload in flight whose row was written, for storage_internal.object_upload_commit only (42501 otherwise).';

-- storage_internal.object_upload_abort(version) → void
-- Ends an upload that will not commit (refused by size while streaming, refused at commit,
-- client gone, a resumable upload terminated): its blob, if any was written, is queued in
-- storage.blobs_freed unless a row uses it, and the in-flight entry goes, with the resumable
-- upload's record if it was one. SECURITY DEFINER (request roles have no right on the
-- bookkeeping tables): the server calls it as the uploader. Knowing the version is the
-- capability: it is random and only the uploader was given it; an entry already ended is a
-- no-op.
create or replace function storage_internal.object_upload_abort(version text) returns void
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  set enable_seqscan = off
  set jit = off
  as $$
#variable_conflict use_column
declare
  u storage.blob_uploads;
begin
  delete from storage.resumable_uploads r where r.version = object_upload_abort.version;
  delete from storage.s3_multipart_uploads m where m.version = object_upload_abort.version;
  delete from storage.blob_uploads x where x.version = object_upload_abort.version returning * into u;
  if found and not exists (select from storage.objects o where o.version = u.version) then
    insert into storage.blobs_freed (version, bucket_id) values (u.version, u.bucket_id);
  end if;
end
$$;
revoke all on function storage_internal.object_upload_abort(text) from public;
grant execute on function storage_internal.object_upload_abort(text) to anon, authenticated, service_role;
comment on function storage_internal.object_upload_abort(text) is
  'Internal, SECURITY DEFINER: ends an upload in flight that will not commit and queues its blob for collection; called by the server as the uploader.';
