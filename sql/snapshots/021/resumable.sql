-- Resumable uploads (TUS). An upload's state is a row of storage.resumable_uploads, keyed by
-- the version its object will have; its bytes grow in the blob store as a partial blob whose
-- progress (upload_offset, blob_state, md5_state) the server records after each append. Every
-- step runs as the uploader: creating applies the same checks as a REST upload
-- (storage_internal.object_write_check: bucket, size, MIME, key, RLS dry-run, duplicate), each
-- append repeats the dry-run, and completing commits the row through
-- storage_internal.object_upload_commit, the REST uploads' own commit. The upload is in flight
-- (storage.blob_uploads) from creation to completion, so an abandoned one is found, expired
-- and collected like any interrupted upload.
--
-- Who may touch an upload: whoever knows its version (122 random bits, given only to its
-- creator, in the upload URL) and has the creator's sub (NULL matches NULL): another user
-- holding the URL sees no such upload.

-- storage_internal.resumable_create(bucket_id, name, upsert, mimetype, cache_control,
--   upload_length, user_metadata, metadata, expires_in) → (version, size_limit, expires_at)
-- Creates a resumable upload as the uploader, after every check a REST upload of
-- upload_length bytes would pass (mimetype NULL: none declared, not checked; upload_length
-- NULL: declared later). Raises what storage_internal.object_write_check raises.
create or replace function storage_internal.resumable_create(
  bucket_id text,
  name text,
  upsert boolean,
  mimetype text,
  cache_control text,
  upload_length bigint,
  user_metadata jsonb,
  metadata text,
  expires_in interval,
  out version text,
  out size_limit bigint,
  out expires_at timestamptz
)
  language plpgsql
  as $$
declare
  _ok boolean;
begin
  perform storage_internal.bucket_id_check(resumable_create.bucket_id);
  perform storage_internal.object_name_check(resumable_create.name);
  if resumable_create.upload_length < 0 then
    raise exception using errcode = 'ST010', message = 'upload_length must not be negative';
  end if;
  version := storage_internal.blob_upload_begin(resumable_create.bucket_id, resumable_create.name);
  size_limit := storage_internal.object_write_check(resumable_create.bucket_id, resumable_create.name,
    coalesce(resumable_create.upsert, false), resumable_create.mimetype, resumable_create.upload_length,
    resumable_create.user_metadata, version);
  expires_at := now() + resumable_create.expires_in;
  _ok := storage_internal.resumable_record(version, resumable_create.bucket_id, resumable_create.name,
    resumable_create.upload_length, size_limit, coalesce(resumable_create.mimetype, 'application/octet-stream'),
    resumable_create.cache_control, resumable_create.user_metadata, coalesce(resumable_create.metadata, ''), expires_at);
end
$$;
revoke all on function storage_internal.resumable_create(text, text, boolean, text, text, bigint, jsonb, text, interval) from public;
grant execute on function storage_internal.resumable_create(text, text, boolean, text, text, bigint, jsonb, text, interval)
  to anon, authenticated, service_role;
comment on function storage_internal.resumable_create(text, text, boolean, text, text, bigint, jsonb, text, interval) is
  'Internal, the server''s TUS create, as the uploader: the checks of storage_internal.object_write_check, then the upload recorded in storage.resumable_uploads; returns its version, size limit and expiry.';

-- storage_internal.resumable_record(…) → boolean
-- Writes the new upload's row. SECURITY DEFINER (request roles have no right on the table);
-- for storage_internal.resumable_create only, after its checks (42501 otherwise).
create or replace function storage_internal.resumable_record(
  version text, bucket_id text, name text, upload_length bigint, size_limit bigint, mimetype text,
  cache_control text, user_metadata jsonb, metadata text, expires_at timestamptz
) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage_internal.resumable_create') then
    raise exception using errcode = '42501',
      message = 'storage_internal.resumable_record may only be called by storage_internal.resumable_create';
  end if;
  insert into storage.resumable_uploads (version, bucket_id, name, owner_id, upload_length, size_limit,
    mimetype, cache_control, user_metadata, metadata, expires_at)
  values (resumable_record.version, resumable_record.bucket_id, resumable_record.name,
    nullif(current_setting('request.jwt.claim.sub', true), ''), resumable_record.upload_length,
    resumable_record.size_limit, resumable_record.mimetype, resumable_record.cache_control,
    resumable_record.user_metadata, resumable_record.metadata, resumable_record.expires_at);
  return true;
end
$$;
revoke all on function storage_internal.resumable_record(text, text, text, bigint, bigint, text, text, jsonb, text, timestamptz) from public;
grant execute on function storage_internal.resumable_record(text, text, text, bigint, bigint, text, text, jsonb, text, timestamptz)
  to anon, authenticated, service_role;
comment on function storage_internal.resumable_record(text, text, text, bigint, bigint, text, text, jsonb, text, timestamptz) is
  'Internal, SECURITY DEFINER: writes a new resumable upload''s row, for storage_internal.resumable_create only (42501 otherwise).';

-- storage_internal.resumable_get(version) → storage.resumable_uploads
-- The upload of version, if the caller's sub is its creator's; no row otherwise (unknown, or
-- another user's). Expired uploads are returned too (expires_at tells). SECURITY DEFINER: the
-- version is the capability, and the sub must match.
create or replace function storage_internal.resumable_get(version text) returns setof storage.resumable_uploads
  language sql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select * from storage.resumable_uploads r
    where r.version = resumable_get.version
      and r.owner_id is not distinct from nullif(current_setting('request.jwt.claim.sub', true), '')
  $$;
revoke all on function storage_internal.resumable_get(text) from public;
grant execute on function storage_internal.resumable_get(text) to anon, authenticated, service_role;
comment on function storage_internal.resumable_get(text) is
  'Internal, SECURITY DEFINER: the caller''s resumable upload of version (none if unknown or another sub''s); knowing the version is the capability.';

-- storage_internal.resumable_check(version, upsert) → (upload row…, limit)
-- What an append must pass before its bytes move, as the uploader: the upload exists and is
-- the caller's (ST002 otherwise) and, unless it expired (the caller answers that), the RLS
-- dry-run and duplicate check of its row again, with this request's upsert (the bucket must
-- still exist: ST001). Returns the row and the size limit now in force, which bounds an upload
-- whose length was not declared yet.
create or replace function storage_internal.resumable_check(version text, upsert boolean,
  out upload storage.resumable_uploads, out size_limit bigint)
  language plpgsql
  as $$
begin
  select * into upload from storage_internal.resumable_get(resumable_check.version) r;
  if upload.version is null then
    raise exception using errcode = 'ST002', message = 'The upload does not exist';
  end if;
  if upload.expires_at <= now() then
    return;
  end if;
  size_limit := storage_internal.object_write_check(upload.bucket_id, upload.name, coalesce(resumable_check.upsert, false),
    null, null, upload.user_metadata, upload.version);
end
$$;
revoke all on function storage_internal.resumable_check(text, boolean) from public;
grant execute on function storage_internal.resumable_check(text, boolean) to anon, authenticated, service_role;
comment on function storage_internal.resumable_check(text, boolean) is
  'Internal, the server''s TUS append check, as the uploader: the caller''s upload (ST002) and, unless expired, the RLS dry-run and duplicate check again; returns the row and the size limit. Raises ST002, ST001, ST004, 42501.';

-- storage_internal.resumable_advance(version, from_offset, to_offset, upload_length,
--   blob_state, md5_state, expires_in) → boolean
-- Records an append: the partial blob now holds to_offset durable bytes (from from_offset,
-- which must be the recorded offset: ST015 otherwise), described by blob_state, hashed so far
-- by md5_state; upload_length declares a deferred length (ignored when already declared). The
-- upload's expiry moves to expires_in from now: uploads expire after inactivity. For the
-- servers' role storage_server only (and the owner): the blob state names the partial blob's
-- pieces in the store, which no request role may choose. The server calls it under the
-- upload's lock, after storage_internal.resumable_check ran as the uploader. ST002 when the
-- upload is gone or completed.
create or replace function storage_internal.resumable_advance(version text, from_offset bigint, to_offset bigint,
  upload_length bigint, blob_state text, md5_state bytea, expires_in interval) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  r storage.resumable_uploads;
begin
  select * into r from storage.resumable_uploads x where x.version = resumable_advance.version for update;
  if not found or r.completed_at is not null then
    raise exception using errcode = 'ST002', message = 'The upload does not exist';
  end if;
  if r.upload_offset <> resumable_advance.from_offset or resumable_advance.to_offset < resumable_advance.from_offset then
    raise exception using errcode = 'ST015', message = 'Upload-Offset conflict';
  end if;
  r.upload_length := coalesce(r.upload_length, resumable_advance.upload_length);
  if resumable_advance.to_offset > r.upload_length then
    raise exception using errcode = 'ST008', message = 'The object exceeded the maximum allowed size';
  end if;
  update storage.resumable_uploads x
  set upload_offset = resumable_advance.to_offset, upload_length = r.upload_length,
      blob_state = resumable_advance.blob_state, md5_state = resumable_advance.md5_state,
      expires_at = greatest(x.expires_at, now() + resumable_advance.expires_in)
  where x.version = resumable_advance.version;
  return true;
end
$$;
revoke all on function storage_internal.resumable_advance(text, bigint, bigint, bigint, text, bytea, interval) from public;
grant execute on function storage_internal.resumable_advance(text, bigint, bigint, bigint, text, bytea, interval) to storage_server;
comment on function storage_internal.resumable_advance(text, bigint, bigint, bigint, text, bytea, interval) is
  'Internal, for the servers (storage_server): records an append to a resumable upload (offset, blob state, hash state, deferred length) and extends its expiry. Raises ST002, ST015 offset conflict, ST008.';

-- storage_internal.resumable_complete(version, from_offset, size, md5, upsert) → uuid
-- Completes the caller's upload whose blob (size bytes, under its version) is complete and
-- durable: the recorded offset must be from_offset (ST015), size its declared length (ST008),
-- then the row is written by storage_internal.object_upload_commit as for a REST upload, as
-- the uploader, with this request's upsert, the creator as owner, and the declared metadata.
-- The upload stays, marked completed, until it expires (HEAD reports it whole). Returns the
-- object's id.
create or replace function storage_internal.resumable_complete(version text, from_offset bigint, size bigint,
  md5 text, upsert boolean) returns uuid
  language plpgsql
  as $$
declare
  r storage.resumable_uploads;
  _id uuid;
  _ok boolean;
begin
  select * into r from storage_internal.resumable_get(resumable_complete.version) x;
  if r.version is null then
    raise exception using errcode = 'ST002', message = 'The upload does not exist';
  end if;
  if r.completed_at is not null or r.upload_offset <> resumable_complete.from_offset then
    raise exception using errcode = 'ST015', message = 'Upload-Offset conflict';
  end if;
  if resumable_complete.size <> coalesce(r.upload_length, resumable_complete.size)
     or resumable_complete.size > r.size_limit then
    raise exception using errcode = 'ST008', message = 'The object exceeded the maximum allowed size';
  end if;
  _id := storage_internal.object_upload_commit(r.bucket_id, r.name, r.version, coalesce(resumable_complete.upsert, false),
    r.owner_id, resumable_complete.size, resumable_complete.md5, r.mimetype, r.cache_control, r.user_metadata);
  _ok := storage_internal.resumable_completed(r.version, resumable_complete.size);
  return _id;
end
$$;
revoke all on function storage_internal.resumable_complete(text, bigint, bigint, text, boolean) from public;
grant execute on function storage_internal.resumable_complete(text, bigint, bigint, text, boolean)
  to anon, authenticated, service_role;
comment on function storage_internal.resumable_complete(text, bigint, bigint, text, boolean) is
  'Internal, the server''s TUS completion, as the uploader: commits the object row through storage_internal.object_upload_commit and marks the upload completed; returns the object id. Raises ST002, ST015, ST008, ST004, ST010, 42501.';

-- storage_internal.resumable_completed(version, size) → boolean
-- Marks the upload completed with size bytes. SECURITY DEFINER; for
-- storage_internal.resumable_complete only, after the commit (42501 otherwise).
create or replace function storage_internal.resumable_completed(version text, size bigint) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage_internal.resumable_complete') then
    raise exception using errcode = '42501',
      message = 'storage_internal.resumable_completed may only be called by storage_internal.resumable_complete';
  end if;
  update storage.resumable_uploads r
  set upload_offset = resumable_completed.size, upload_length = resumable_completed.size,
      completed_at = now(), blob_state = '', md5_state = null
  where r.version = resumable_completed.version;
  return found;
end
$$;
revoke all on function storage_internal.resumable_completed(text, bigint) from public;
grant execute on function storage_internal.resumable_completed(text, bigint) to anon, authenticated, service_role;
comment on function storage_internal.resumable_completed(text, bigint) is
  'Internal, SECURITY DEFINER: marks a resumable upload completed, for storage_internal.resumable_complete only (42501 otherwise).';

-- storage_internal.resumable_terminate(version, bucket_id, name, upsert) → text (the blob state)
-- Terminates the caller's unfinished upload (TUS DELETE), as the uploader: it must exist, be
-- the caller's and be for bucket_id/name (ST002), pass the RLS dry-run and duplicate check as an append would (so only a
-- caller who may write the object may end its upload), and not be completed (ST010). The
-- upload is aborted (storage_internal.object_upload_abort: its row and in-flight entry go, its
-- blob is queued); returns the partial blob's state for the server to discard it.
create or replace function storage_internal.resumable_terminate(version text, bucket_id text, name text, upsert boolean)
  returns text
  language plpgsql
  as $$
declare
  c record;
begin
  select * into c from storage_internal.resumable_check(resumable_terminate.version, resumable_terminate.upsert);
  if (c.upload).bucket_id <> resumable_terminate.bucket_id or (c.upload).name <> resumable_terminate.name then
    raise exception using errcode = 'ST002', message = 'The upload does not exist';
  end if;
  if (c.upload).completed_at is not null then
    raise exception using errcode = 'ST010', message = 'Cannot terminate an already completed upload';
  end if;
  perform storage_internal.object_upload_abort(resumable_terminate.version);
  return (c.upload).blob_state;
end
$$;
revoke all on function storage_internal.resumable_terminate(text, text, text, boolean) from public;
grant execute on function storage_internal.resumable_terminate(text, text, text, boolean) to anon, authenticated, service_role;
comment on function storage_internal.resumable_terminate(text, text, text, boolean) is
  'Internal, the server''s TUS termination, as the uploader: the append checks, then the unfinished upload is aborted; returns its blob state. Raises ST002, ST001, ST004, 42501, ST010 when completed.';

-- storage_internal.resumable_expire() → setof text
-- For the collector (storage_server): removes the uploads whose expiry passed. An unfinished
-- one ends as an aborted upload would (its in-flight entry goes, its blob is queued; the
-- partial blob becomes a leftover the collector removes); a completed one only loses its
-- record. Returns the versions of the unfinished ones.
create or replace function storage_internal.resumable_expire() returns setof text
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    with gone as (
      delete from storage.resumable_uploads r where r.expires_at <= now()
      returning r.version, r.bucket_id, r.completed_at
    ), ended as (
      delete from storage.blob_uploads u using gone g
      where u.version = g.version and g.completed_at is null
      returning u.version, u.bucket_id
    )
    insert into storage.blobs_freed (version, bucket_id)
    select e.version, e.bucket_id from ended e
    where not exists (select from storage.objects o where o.version = e.version)
    returning version
  $$;
revoke all on function storage_internal.resumable_expire() from public;
grant execute on function storage_internal.resumable_expire() to storage_server;
comment on function storage_internal.resumable_expire() is
  'Internal, for the collector (storage_server): removes expired resumable uploads; unfinished ones are aborted and their blobs queued.';
