-- Move and copy are metadata-only: the destination row points at the same immutable blob
-- (same version), so no byte is read or written whatever the object's size. A blob stays as
-- long as any row references it (the objects_free_blobs trigger frees it with its last row).

-- storage_internal.object_dest_check(bucket_id, name, size, mimetype) → void: the destination of a
-- move or copy must be a valid key (ST007) in an existing bucket (23503, "the related resource
-- does not exist") whose size limit and MIME rules the object satisfies (ST008, ST009). The
-- reference does not apply the destination bucket's limits; we do, so a bucket's limits hold
-- whatever way an object enters it.
create or replace function storage_internal.object_dest_check(bucket_id text, name text, size bigint, mimetype text)
  returns void
  language plpgsql
  as $$
declare
  b record;
begin
  perform storage_internal.bucket_id_check(object_dest_check.bucket_id);
  perform storage_internal.object_name_check(object_dest_check.name);
  begin
    select * into b from storage_internal.bucket_lookup(object_dest_check.bucket_id);
  exception when sqlstate 'ST001' then
    raise exception using errcode = '23503', message = 'The related resource does not exist';
  end;
  if object_dest_check.name like '%.emptyFolderPlaceholder' then
    if coalesce(object_dest_check.size, 0) > 0 then
      raise exception using errcode = 'ST008', message = 'The object exceeded the maximum allowed size';
    end if;
    return;
  end if;
  if object_dest_check.size > b.file_size_limit then
    raise exception using errcode = 'ST008', message = 'The object exceeded the maximum allowed size';
  end if;
  if not storage_internal.mime_type_allowed(coalesce(object_dest_check.mimetype, 'application/octet-stream'), b.allowed_mime_types) then
    raise exception using errcode = 'ST009',
      message = format('mime type %s is not supported', object_dest_check.mimetype);
  end if;
end
$$;
revoke all on function storage_internal.object_dest_check(text, text, bigint, text) from public;
grant execute on function storage_internal.object_dest_check(text, text, bigint, text) to anon, authenticated, service_role;
comment on function storage_internal.object_dest_check(text, text, bigint, text) is
  'Internal check: the destination of a move or copy is a valid key in an existing bucket whose limits the object meets. Raises ST006, ST007, 23503, ST008, ST009.';

-- storage_internal.object_share_lock(id) → storage.objects: locks the object row against
-- delete and overwrite until the caller's transaction ends (FOR SHARE) and returns it as it is
-- now (NULL when it is gone). storage.object_copy calls it after reading the source under RLS,
-- so a concurrent delete or overwrite of the source cannot free the blob the copy is about to
-- reference, and the copy takes the version and metadata that go together. SECURITY DEFINER:
-- SELECT … FOR SHARE would otherwise require UPDATE policies on the source. So that it never
-- locks or returns a row its caller may not see, it answers storage.object_copy only
-- (storage_internal.called_by), which passes the id of the row it has just read as the
-- caller: a direct call is refused (42501).
create or replace function storage_internal.object_share_lock(id uuid) returns storage.objects
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  o storage.objects;
begin
  if not storage_internal.called_by('storage.object_copy') then
    raise exception using errcode = '42501', message = 'storage_internal.object_share_lock may only be called by storage.object_copy';
  end if;
  select * into o from storage.objects x where x.id = object_share_lock.id for share;
  return o;
end
$$;
revoke all on function storage_internal.object_share_lock(uuid) from public;
grant execute on function storage_internal.object_share_lock(uuid) to anon, authenticated, service_role;
comment on function storage_internal.object_share_lock(uuid) is
  'Internal, SECURITY DEFINER: locks (FOR SHARE) and returns a copy''s source row, for storage.object_copy only (42501 otherwise).';

-- storage.object_move(bucket_id, source_key, destination_key, destination_bucket) → void
-- Renames an object, within a bucket or into another, as the calling role (RLS: SELECT and
-- UPDATE; UPDATE's USING sees the old row, WITH CHECK the new one). The row keeps its id,
-- version (blob), metadata and user_metadata; owner becomes the mover's sub when there is one.
-- Moving onto itself is a no-op. Errors: ST002 source missing or hidden; 23505 destination
-- exists; 23503 destination bucket missing; ST007/ST006 bad names; ST008/ST009 destination
-- limits; 42501 RLS.
create or replace function storage.object_move(bucket_id text, source_key text, destination_key text,
  destination_bucket text default null) returns void
  language plpgsql
  as $$
#variable_conflict use_column
declare
  _dest_bucket text := coalesce(object_move.destination_bucket, object_move.bucket_id);
  _sub text := nullif(current_setting('request.jwt.claim.sub', true), '');
  src storage.objects;
begin
  perform storage_internal.bucket_id_check(object_move.bucket_id);
  select * into src from storage.objects o
  where o.bucket_id = object_move.bucket_id and o.name collate "C" = object_move.source_key;
  if not found then
    raise exception using errcode = 'ST002', message = 'Object not found';
  end if;
  if _dest_bucket = object_move.bucket_id and object_move.destination_key = object_move.source_key then
    return;
  end if;
  perform storage_internal.object_dest_check(_dest_bucket, object_move.destination_key,
    (src.metadata ->> 'size')::bigint, src.metadata ->> 'mimetype');
  update storage.objects o
  set bucket_id = _dest_bucket,
      name = object_move.destination_key,
      owner = case when _sub is null then o.owner else storage_internal.uuid_or_null(_sub) end,
      owner_id = coalesce(_sub, o.owner_id)
  where o.id = src.id;
  if not found then
    raise exception using errcode = 'ST002', message = 'Object not found';
  end if;
end
$$;
comment on function storage.object_move(text, text, text, text) is
  'Renames an object, within its bucket or into another, as the caller (RLS: SELECT and UPDATE policies); no bytes move. Raises ST002 source missing or hidden, 23505 destination exists, 23503 destination bucket missing, ST006, ST007, ST008, ST009, 42501.';

-- storage.object_copy(bucket_id, source_key, destination_key, destination_bucket, upsert,
--                     copy_metadata, metadata, user_metadata) → storage.objects
-- Copies an object as the calling role (RLS: SELECT on the source; INSERT on the destination,
-- plus UPDATE and SELECT when upserting) and returns the new row. The copy shares the
-- source's blob. copy_metadata (default true) keeps the source's metadata and user_metadata;
-- false starts from the source's metadata with cacheControl and mimetype overridden by
-- metadata's, and takes user_metadata as given (NULL when none). The owner is the copier's
-- sub. An existing destination is ST004 unless upsert, which replaces it (keeping its id).
-- Errors: ST002 source missing or hidden; 23503 destination bucket missing; ST006/ST007 bad
-- names; ST008/ST009 destination limits; 42501 RLS.
create or replace function storage.object_copy(bucket_id text, source_key text, destination_key text,
  destination_bucket text default null, upsert boolean default false, copy_metadata boolean default true,
  metadata jsonb default null, user_metadata jsonb default null) returns storage.objects
  language plpgsql
  as $$
#variable_conflict use_column
declare
  _dest_bucket text := coalesce(object_copy.destination_bucket, object_copy.bucket_id);
  _sub text := nullif(current_setting('request.jwt.claim.sub', true), '');
  src storage.objects;
  _version text;
  _meta jsonb;
  _umeta jsonb;
  dst storage.objects;
begin
  perform storage_internal.bucket_id_check(object_copy.bucket_id);
  select * into src from storage.objects o
  where o.bucket_id = object_copy.bucket_id and o.name collate "C" = object_copy.source_key;
  if not found then
    raise exception using errcode = 'ST002', message = 'Object not found';
  end if;
  -- Copying an object onto itself keeps its bytes (as moving does); without upsert the key
  -- exists. With copy_metadata false it rewrites the metadata in place (S3's CopyObject with
  -- a REPLACE directive), as the caller (RLS: UPDATE and SELECT).
  if _dest_bucket = object_copy.bucket_id and object_copy.destination_key = object_copy.source_key then
    if not object_copy.upsert then
      raise exception using errcode = 'ST004', message = 'The resource already exists';
    end if;
    if coalesce(object_copy.copy_metadata, true) then
      return src;
    end if;
    update storage.objects o
      set metadata = coalesce(o.metadata, '{}'::jsonb) || jsonb_strip_nulls(jsonb_build_object(
            'cacheControl', object_copy.metadata ->> 'cacheControl',
            'mimetype', object_copy.metadata ->> 'mimetype'))
          || jsonb_build_object('lastModified', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
          user_metadata = object_copy.user_metadata
      where o.id = src.id
      returning o.* into dst;
    if not found then
      raise exception using errcode = '42501', message = 'new row violates row-level security policy';
    end if;
    return dst;
  end if;
  -- Lock the source, then take its version and metadata as they are now (an overwrite may
  -- have committed since it was read).
  src := storage_internal.object_share_lock(src.id);
  if src.id is null then -- deleted since it was read
    raise exception using errcode = 'ST002', message = 'Object not found';
  end if;
  _version := src.version;
  _meta := coalesce(src.metadata, '{}'::jsonb);
  _umeta := src.user_metadata;
  if not coalesce(object_copy.copy_metadata, true) then
    _meta := _meta || jsonb_strip_nulls(jsonb_build_object(
      'cacheControl', object_copy.metadata ->> 'cacheControl',
      'mimetype', object_copy.metadata ->> 'mimetype'));
    _umeta := object_copy.user_metadata;
  end if;
  _meta := _meta || jsonb_build_object('lastModified', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
  perform storage_internal.object_dest_check(_dest_bucket, object_copy.destination_key,
    (_meta ->> 'size')::bigint, _meta ->> 'mimetype');
  begin
    if object_copy.upsert then
      insert into storage.objects as o (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
      values (_dest_bucket, object_copy.destination_key, storage_internal.uuid_or_null(_sub), _sub, _version, _meta, _umeta)
      on conflict (bucket_id, name) do update
        set version = excluded.version, metadata = excluded.metadata, user_metadata = excluded.user_metadata,
            owner = excluded.owner, owner_id = excluded.owner_id
      returning o.* into dst;
    else
      insert into storage.objects as o (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
      values (_dest_bucket, object_copy.destination_key, storage_internal.uuid_or_null(_sub), _sub, _version, _meta, _umeta)
      returning o.* into dst;
    end if;
  exception when unique_violation then
    raise exception using errcode = 'ST004', message = 'The resource already exists';
  end;
  return dst;
end
$$;
comment on function storage.object_copy(text, text, text, text, boolean, boolean, jsonb, jsonb) is
  'Copies an object as the caller (RLS: SELECT on the source; INSERT, and UPDATE and SELECT with upsert, on the destination) sharing its bytes, and returns the new row. Raises ST002 source missing or hidden, ST004 destination exists, 23503 destination bucket missing, ST006, ST007, ST008, ST009, 42501.';
