-- storage_internal.object_upload_commit(bucket_id, name, version, upsert, owner_id, size, md5,
--                                       mimetype, cache_control, user_metadata, x_robots_tag) → uuid
-- Writes the row of an upload whose blob (under version) is complete and durable, as the
-- uploader: the caller's policies decide on the row as it is now (RLS: INSERT; with upsert,
-- INSERT … ON CONFLICT DO UPDATE … RETURNING, so also UPDATE — of the row really there — and
-- SELECT, the policies the reference's dry-run needs), not only on the dry-run made before the
-- bytes moved. Returns the object's id. The duplicate check
-- is atomic here: without upsert an existing key raises ST004 (of concurrent uploads of one key
-- exactly one wins); with upsert the row keeps its id and created_at, takes the new version,
-- metadata and user_metadata, and the owner changes only when owner_id is given (NULL keeps
-- it) — the replaced blob is queued by the objects_free_replaced_blobs trigger. The upload
-- must still be in flight for this key (ST010 otherwise: it was expired or aborted, and its
-- blob is queued for deletion); the objects_guard trigger checks the version against it and
-- the entry ends with the commit.
create or replace function storage_internal.object_upload_commit(
  bucket_id text,
  name text,
  version text,
  upsert boolean,
  owner_id text,
  size bigint,
  md5 text,
  mimetype text,
  cache_control text,
  user_metadata jsonb,
  x_robots_tag text default null
) returns uuid
  language plpgsql
  as $$
#variable_conflict use_column
declare
  _meta jsonb := jsonb_strip_nulls(jsonb_build_object(
    'eTag', '"' || object_upload_commit.md5 || '"',
    'size', object_upload_commit.size,
    'mimetype', object_upload_commit.mimetype,
    'cacheControl', object_upload_commit.cache_control,
    'lastModified', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'contentLength', object_upload_commit.size,
    'httpStatusCode', 200,
    'xRobotsTag', object_upload_commit.x_robots_tag));
  _id uuid;
begin
  if not storage_internal.blob_upload_active(object_upload_commit.version, object_upload_commit.bucket_id, object_upload_commit.name) then
    raise exception using errcode = 'ST010', message = 'The upload is no longer in progress (it expired or was aborted); upload again';
  end if;
  if object_upload_commit.upsert then
    insert into storage.objects as o (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
    values (object_upload_commit.bucket_id, object_upload_commit.name, storage_internal.uuid_or_null(object_upload_commit.owner_id),
            object_upload_commit.owner_id, object_upload_commit.version, _meta, object_upload_commit.user_metadata)
    on conflict (bucket_id, name) do update
      set version = excluded.version,
          metadata = excluded.metadata,
          user_metadata = excluded.user_metadata,
          owner = coalesce(excluded.owner, case when excluded.owner_id is null then o.owner end),
          owner_id = coalesce(excluded.owner_id, o.owner_id)
    returning o.id into _id;
  elsif row_security_active('storage.objects') then
    -- A plain INSERT, as the reference's dry-run: RETURNING or ON CONFLICT would make
    -- PostgreSQL apply the caller's SELECT policies to the new row too, and a plain upload
    -- needs only an INSERT policy.
    _id := gen_random_uuid();
    begin
      insert into storage.objects (id, bucket_id, name, owner, owner_id, version, metadata, user_metadata)
      values (_id, object_upload_commit.bucket_id, object_upload_commit.name, storage_internal.uuid_or_null(object_upload_commit.owner_id),
              object_upload_commit.owner_id, object_upload_commit.version, _meta, object_upload_commit.user_metadata);
    exception when unique_violation then
      raise exception using errcode = 'ST004', message = 'The resource already exists';
    end;
  else
    -- No policy applies (service_role, the owner): no subtransaction needed to catch the
    -- duplicate.
    insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
    values (object_upload_commit.bucket_id, object_upload_commit.name, storage_internal.uuid_or_null(object_upload_commit.owner_id),
            object_upload_commit.owner_id, object_upload_commit.version, _meta, object_upload_commit.user_metadata)
    on conflict (bucket_id, name) do nothing
    returning id into _id;
    if _id is null then
      raise exception using errcode = 'ST004', message = 'The resource already exists';
    end if;
  end if;
  -- The entry ends with the row (a concurrent expiry in between rolls the row back).
  if not storage_internal.blob_upload_end(object_upload_commit.version) then
    raise exception using errcode = 'ST010', message = 'The upload is no longer in progress (it expired or was aborted); upload again';
  end if;
  return _id;
end
$$;
revoke all on function storage_internal.object_upload_commit(text, text, text, boolean, text, bigint, text, text, text, jsonb, text) from public;
grant execute on function storage_internal.object_upload_commit(text, text, text, boolean, text, bigint, text, text, text, jsonb, text)
  to anon, authenticated, service_role;
comment on function storage_internal.object_upload_commit(text, text, text, boolean, text, bigint, text, text, text, jsonb, text) is
  'Internal, the server''s last upload step, as the uploader: writes the row of an upload in flight under the caller''s policies (INSERT, or upsert) and ends the upload; returns the id. Raises ST010 no longer in flight, ST004 duplicate, 42501 RLS.';
