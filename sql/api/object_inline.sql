-- Small objects inline: their bytes live in storage.inline_blobs (migration 021), keyed by
-- version like a blob in the blob store, and are written in the upload's own transaction, so a
-- small upload is one call and one commit, with no file to sync. Rows, RLS, copies (which share
-- the version), freeing (storage.blobs_freed, then storage_internal.blob_collect_done removes
-- the bytes) and reconcile treat an inline version as they treat any other.

-- storage_internal.object_upload_inline(bucket_id, name, upsert, owner_id, data, mimetype,
--                                       cache_control, user_metadata, x_robots_tag) → uuid
-- A whole upload of data in one transaction, as the uploader: the checks of
-- storage_internal.object_upload_prepare (bucket, size, MIME, key), the bytes stored under a
-- fresh version recorded in flight, and the row written by storage_internal.object_upload_commit,
-- whose INSERT or upsert applies the caller's policies (the policy dry-run of a streamed upload
-- is not needed: the real row is written in the same transaction, and any refusal rolls the
-- bytes back with it). The ETag is the MD5 of data, computed here. Returns the object's id.
create or replace function storage_internal.object_upload_inline(
  bucket_id text,
  name text,
  upsert boolean,
  owner_id text,
  data bytea,
  mimetype text,
  cache_control text,
  user_metadata jsonb,
  x_robots_tag text default null
) returns uuid
  language plpgsql
  as $$
declare
  _version text;
  _size bigint;
  _upsert boolean := coalesce(object_upload_inline.upsert, false);
  _mimetype text := coalesce(object_upload_inline.mimetype, 'application/octet-stream');
begin
  perform storage_internal.object_write_limits(object_upload_inline.bucket_id, object_upload_inline.name,
    _mimetype, length(object_upload_inline.data));
  _version := storage_internal.blob_upload_begin(object_upload_inline.bucket_id, object_upload_inline.name);
  -- Assignments, not PERFORM: the SECURITY DEFINER helpers check their caller's frame, and
  -- PERFORM would run them from an SQL statement of its own.
  _size := storage_internal.inline_blob_put(_version, object_upload_inline.data);
  return storage_internal.object_upload_commit(object_upload_inline.bucket_id, object_upload_inline.name, _version,
    _upsert, object_upload_inline.owner_id, _size,
    md5(object_upload_inline.data), _mimetype, object_upload_inline.cache_control,
    object_upload_inline.user_metadata, object_upload_inline.x_robots_tag);
end
$$;
revoke all on function storage_internal.object_upload_inline(text, text, boolean, text, bytea, text, text, jsonb, text) from public;
grant execute on function storage_internal.object_upload_inline(text, text, boolean, text, bytea, text, text, jsonb, text)
  to anon, authenticated, service_role;
comment on function storage_internal.object_upload_inline(text, text, boolean, text, bytea, text, text, jsonb, text) is
  'Internal, the server''s upload of a small object in one call, as the uploader: the upload checks, the bytes stored inline (storage.inline_blobs) and the row written under the caller''s policies, in one transaction; returns the id. Raises ST006, ST001, ST008, ST009, ST007, ST004, 42501.';

-- storage_internal.inline_blob_put(version, data) → bigint
-- Stores the bytes of an upload in flight; returns their length. SECURITY DEFINER (request roles cannot write
-- storage.inline_blobs); for storage_internal.object_upload_inline only, which has just
-- recorded version in flight (42501 otherwise).
create or replace function storage_internal.inline_blob_put(version text, data bytea) returns bigint
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage_internal.object_upload_inline') then
    raise exception using errcode = '42501',
      message = 'storage_internal.inline_blob_put may only be called by storage_internal.object_upload_inline';
  end if;
  insert into storage.inline_blobs (version, data) values (inline_blob_put.version, inline_blob_put.data);
  return length(inline_blob_put.data);
end
$$;
revoke all on function storage_internal.inline_blob_put(text, bytea) from public;
grant execute on function storage_internal.inline_blob_put(text, bytea) to anon, authenticated, service_role;
comment on function storage_internal.inline_blob_put(text, bytea) is
  'Internal, SECURITY DEFINER: stores an inline upload''s bytes, for storage_internal.object_upload_inline only (42501 otherwise).';

-- storage_internal.version_public(version) → boolean: whether an object of a public bucket
-- holds version. SECURITY DEFINER: it discloses only what the public routes serve to anyone.
create or replace function storage_internal.version_public(version text) returns boolean
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  return exists (select from storage.objects o join storage.buckets b on b.id = o.bucket_id
                 where o.version = version_public.version and b.public);
end
$$;
revoke all on function storage_internal.version_public(text) from public;
grant execute on function storage_internal.version_public(text) to anon, authenticated, service_role;
comment on function storage_internal.version_public(text) is
  'Internal, SECURITY DEFINER: whether an object of a public bucket holds a version (what the public routes serve to anyone).';

-- storage_internal.inline_blob_readable(version) → boolean: the row policy of
-- storage.inline_blobs. A request role reads the bytes of a version when it may read an
-- object row holding it (its own SELECT policies), or when an object of a public bucket holds
-- it (what the public routes serve to anyone). SECURITY INVOKER, so that the first test is
-- the caller's RLS; the public test goes through storage_internal.version_public. Both are
-- PL/pgSQL, whose plans live for the session: as SQL functions they were planned again for
-- every row the policy checks, which cost a download more than the rest of its call.
create or replace function storage_internal.inline_blob_readable(version text) returns boolean
  language plpgsql stable
  as $$
begin
  return exists (select from storage.objects o where o.version = inline_blob_readable.version)
      or storage_internal.version_public(inline_blob_readable.version);
end
$$;
revoke all on function storage_internal.inline_blob_readable(text) from public;
grant execute on function storage_internal.inline_blob_readable(text) to anon, authenticated, service_role;
comment on function storage_internal.inline_blob_readable(text) is
  'Internal: the row policy of storage.inline_blobs (an object row the caller may read, or one in a public bucket, holds the version).';
