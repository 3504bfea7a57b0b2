-- storage.blob_upload_begin(bucket_id, name) → text
-- Records an upload in flight under a fresh random version and returns it. SECURITY DEFINER so
-- request roles need no right on storage.blob_uploads; callers cannot choose the version, so
-- an entry can never point at a blob a row uses.
create or replace function storage.blob_upload_begin(bucket_id text, name text) returns text
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _version text;
begin
  insert into storage.blob_uploads (version, bucket_id, name)
  values (replace(gen_random_uuid()::text, '-', ''), blob_upload_begin.bucket_id, blob_upload_begin.name)
  returning version into _version;
  return _version;
end
$$;
revoke all on function storage.blob_upload_begin(text, text) from public;
grant execute on function storage.blob_upload_begin(text, text) to anon, authenticated, service_role;

-- storage.object_upload_abort(version) → void
-- Ends an upload that will not commit (refused by size while streaming, duplicate at commit,
-- client gone): its blob, if any was written, is queued in storage.blobs_freed unless a row
-- uses it, and the in-flight entry goes. Callable by service_role only.
create or replace function storage.object_upload_abort(version text) returns void
  language plpgsql
  -- Its entry by key, never by reading the queue: see storage.object_upload_commit.
  set enable_seqscan = off
  set jit = off
  as $$
#variable_conflict use_column
declare
  u storage.blob_uploads;
begin
  delete from storage.blob_uploads x where x.version = object_upload_abort.version returning * into u;
  if found and not exists (select from storage.objects o where o.version = u.version) then
    insert into storage.blobs_freed (version, bucket_id) values (u.version, u.bucket_id);
  end if;
end
$$;
revoke all on function storage.object_upload_abort(text) from public;
grant execute on function storage.object_upload_abort(text) to service_role;
