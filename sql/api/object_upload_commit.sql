-- storage.object_upload_commit(bucket_id, name, version, upsert, owner_id, size, md5,
--                              mimetype, cache_control, user_metadata, x_robots_tag) → uuid
-- Writes the row of an upload whose blob (under version) is complete and durable, and returns
-- the object's id. The duplicate check is atomic here: without upsert an existing key raises
-- ST004 (of concurrent uploads of one key exactly one wins); with upsert the row keeps its id
-- and created_at, takes the new version, metadata and user_metadata, and the owner changes
-- only when owner_id is given — the replaced blob is queued by the objects_free_blobs
-- trigger. Clears the upload's in-flight entry, which must exist (ST010 otherwise: the upload
-- was expired or aborted, and its blob is queued for deletion). Callable by service_role only: the caller's
-- policies were applied by storage.object_upload_prepare.
create or replace function storage.object_upload_commit(
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
  -- storage.blob_uploads is a queue: a few live entries, and between two vacuums as many dead
  -- ones as there were uploads. A vacuum leaves it empty, so the plan a connection caches next
  -- reads it whole to find one entry, and goes on doing so as the dead entries pile up (at
  -- 2,000 uploads/s, hundreds of pages per commit). Its entry is always found by key.
  set enable_seqscan = off
  -- A statement with no index to use looks astronomically costly with sequential scans off;
  -- it must not be JIT-compiled for that.
  set jit = off
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
  -- The in-flight entry must still be there: an upload expired by storage.blob_upload_expire
  -- (a crash was assumed) has its blob queued for deletion and cannot become a row.
  delete from storage.blob_uploads u where u.version = object_upload_commit.version;
  if not found then
    raise exception using errcode = 'ST010', message = 'The upload is no longer in progress (it expired or was aborted); upload again';
  end if;
  if object_upload_commit.upsert then
    insert into storage.objects as o (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
    values (object_upload_commit.bucket_id, object_upload_commit.name, storage.uuid_or_null(object_upload_commit.owner_id),
            object_upload_commit.owner_id, object_upload_commit.version, _meta, object_upload_commit.user_metadata)
    on conflict (bucket_id, name) do update
      set version = excluded.version,
          metadata = excluded.metadata,
          user_metadata = excluded.user_metadata,
          owner = coalesce(excluded.owner, case when excluded.owner_id is null then o.owner end),
          owner_id = coalesce(excluded.owner_id, o.owner_id)
    returning o.id into _id;
  else
    insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
    values (object_upload_commit.bucket_id, object_upload_commit.name, storage.uuid_or_null(object_upload_commit.owner_id),
            object_upload_commit.owner_id, object_upload_commit.version, _meta, object_upload_commit.user_metadata)
    on conflict (bucket_id, name) do nothing
    returning id into _id;
    if _id is null then
      raise exception using errcode = 'ST004', message = 'The resource already exists';
    end if;
  end if;
  return _id;
end
$$;
revoke all on function storage.object_upload_commit(text, text, text, boolean, text, bigint, text, text, text, jsonb, text) from public;
grant execute on function storage.object_upload_commit(text, text, text, boolean, text, bigint, text, text, text, jsonb, text) to service_role;
