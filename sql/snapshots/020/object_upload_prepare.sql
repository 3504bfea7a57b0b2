-- storage_internal.object_write_check(bucket_id, name, upsert, mimetype, content_length,
--                                     user_metadata, version) → bigint (the size limit)
-- Everything a write of an object must pass before any byte moves, as the calling role:
--   bucket id valid (ST006) and existing (ST001, whatever RLS); size: content_length, when
--   known, within min(bucket limit, server limit), 0 for '.emptyFolderPlaceholder' keys
--   (ST008); MIME allowed by the bucket when given (ST009; not for placeholders); key valid
--   (ST007); RLS dry-run of the row: INSERT, or INSERT … ON CONFLICT DO UPDATE … RETURNING
--   when upserting (needs INSERT, UPDATE and SELECT policies), rolled back (42501; an existing
--   key without upsert is ST004). The dry-run row carries the upload's version (given by
--   storage_internal.object_upload_prepare; without one, an upload in flight is recorded for
--   the dry-run and rolled back with it), so it passes the objects_guard trigger exactly as
--   the real row will. Callers RLS does not apply to skip the dry-run; for them an existing key
--   without upsert is ST004.
-- Returns the size limit (NULL = none) the bytes must then respect.
create or replace function storage_internal.object_write_check(
  bucket_id text,
  name text,
  upsert boolean,
  mimetype text,
  content_length bigint,
  user_metadata jsonb,
  version text default null
) returns bigint
  language plpgsql
  as $$
#variable_conflict use_column
declare
  b record;
  _sub text := nullif(current_setting('request.jwt.claim.sub', true), '');
  _global bigint := nullif(current_setting('storage.upload_file_size_limit', true), '')::bigint;
  _placeholder boolean := object_write_check.name like '%.emptyFolderPlaceholder';
  _meta jsonb := jsonb_build_object('mimetype', object_write_check.mimetype,
                                    'contentLength', object_write_check.content_length);
  _limit bigint;
  _version text := object_write_check.version;
  _seen int;
begin
  perform storage_internal.bucket_id_check(object_write_check.bucket_id);
  select * into b from storage_internal.bucket_lookup(object_write_check.bucket_id);
  _limit := case when _placeholder then 0 else least(b.file_size_limit, _global) end;
  if object_write_check.content_length > _limit then
    raise exception using errcode = 'ST008', message = 'The object exceeded the maximum allowed size';
  end if;
  if not _placeholder and object_write_check.mimetype is not null
     and not storage_internal.mime_type_allowed(object_write_check.mimetype, b.allowed_mime_types) then
    raise exception using errcode = 'ST009',
      message = format('mime type %s is not supported', object_write_check.mimetype);
  end if;
  perform storage_internal.object_name_check(object_write_check.name);

  -- The dry-run: the candidate row must pass the caller's policies. The sentinel exception
  -- rolls the subtransaction back, so the row never exists outside it. A caller RLS does not
  -- apply to (BYPASSRLS such as service_role, the owner) has no policy to pass, and the
  -- subtransaction with its index writes is most of an upload's database time: for it only
  -- the duplicate check runs (object_upload_commit makes that atomic).
  if not row_security_active('storage.objects') then
    if not object_write_check.upsert and exists (
         select from storage.objects x
         where x.bucket_id = object_write_check.bucket_id and x.name collate "C" = object_write_check.name) then
      raise exception using errcode = 'ST004', message = 'The resource already exists';
    end if;
    return _limit;
  end if;
  begin
    if _version is null then
      _version := storage_internal.blob_upload_begin(object_write_check.bucket_id, object_write_check.name);
    end if;
    if object_write_check.upsert then
      insert into storage.objects as o (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
      values (object_write_check.bucket_id, object_write_check.name, storage_internal.uuid_or_null(_sub), _sub,
              _version, _meta, object_write_check.user_metadata)
      on conflict (bucket_id, name) do update
        set version = excluded.version, metadata = excluded.metadata, user_metadata = excluded.user_metadata
      returning 1 into _seen;
    else
      insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
      values (object_write_check.bucket_id, object_write_check.name, storage_internal.uuid_or_null(_sub), _sub,
              _version, _meta, object_write_check.user_metadata);
    end if;
    raise exception using errcode = 'STRBK';
  exception
    when sqlstate 'STRBK' then null;
    when unique_violation then
      raise exception using errcode = 'ST004', message = 'The resource already exists';
  end;
  return _limit;
end
$$;
revoke all on function storage_internal.object_write_check(text, text, boolean, text, bigint, jsonb, text) from public;
grant execute on function storage_internal.object_write_check(text, text, boolean, text, bigint, jsonb, text)
  to anon, authenticated, service_role;
comment on function storage_internal.object_write_check(text, text, boolean, text, bigint, jsonb, text) is
  'Internal: the checks an object write passes before bytes move, as the caller (bucket, size, MIME, key, rolled-back RLS dry-run); returns the size limit. Raises ST006, ST001, ST008, ST009, ST007, ST004, 42501.';

-- storage_internal.object_upload_prepare(bucket_id, name, upsert, mimetype, content_length,
--                                        user_metadata) → (version text, size_limit bigint)
-- The first step of an upload, as the uploader: the upload is recorded in flight under a fresh
-- version (storage_internal.blob_upload_begin), so a blob an interrupted upload leaves behind
-- is found and collected, then storage_internal.object_write_check runs with that version
-- (the whole call rolls back if it refuses). The server streams the bytes, enforcing
-- size_limit, and storage_internal.object_upload_commit writes the row.
create or replace function storage_internal.object_upload_prepare(
  bucket_id text,
  name text,
  upsert boolean default false,
  mimetype text default 'application/octet-stream',
  content_length bigint default null,
  user_metadata jsonb default null,
  out version text,
  out size_limit bigint
)
  language plpgsql
  as $$
begin
  -- Cheap checks first, so a refused upload records nothing: the id and the key are checked
  -- again by object_write_check, with the bucket, limits and policies.
  perform storage_internal.bucket_id_check(object_upload_prepare.bucket_id);
  perform storage_internal.object_name_check(object_upload_prepare.name);
  version := storage_internal.blob_upload_begin(object_upload_prepare.bucket_id, object_upload_prepare.name);
  size_limit := storage_internal.object_write_check(object_upload_prepare.bucket_id, object_upload_prepare.name,
    coalesce(object_upload_prepare.upsert, false), coalesce(object_upload_prepare.mimetype, 'application/octet-stream'),
    object_upload_prepare.content_length, object_upload_prepare.user_metadata, version);
end
$$;
revoke all on function storage_internal.object_upload_prepare(text, text, boolean, text, bigint, jsonb) from public;
grant execute on function storage_internal.object_upload_prepare(text, text, boolean, text, bigint, jsonb)
  to anon, authenticated, service_role;
comment on function storage_internal.object_upload_prepare(text, text, boolean, text, bigint, jsonb) is
  'Internal, the server''s first upload step, as the uploader: records the upload in flight and runs storage_internal.object_write_check; returns the version to write the blob under and the size limit.';
