-- S3 multipart uploads. An upload is a row of storage.s3_multipart_uploads keyed by the
-- version its object will have, which is also the UploadId its client uses (random, given only
-- to the creator); its parts are rows of storage.s3_multipart_parts while their bytes wait in
-- the blob store (blob.Multipart). Every step the client asks for runs as the uploader: creating
-- applies the checks of an upload (storage_internal.object_write_check: bucket, MIME, key, RLS
-- dry-run), each part repeats the dry-run and checks the size limit against the parts so far,
-- completing checks the part list and commits the row through
-- storage_internal.object_upload_commit, the REST uploads' own commit, as the uploader. What
-- only the server knows (the store's state of the upload, each part's store ETag) is recorded
-- by the servers' role, storage_server, after the store did it: no request role chooses which
-- pieces of the store an upload names. The upload is in flight (storage.blob_uploads) from
-- creation to completion, so an abandoned one is expired (storage_internal.s3_multipart_expire)
-- and its pieces collected.
--
-- Who may touch an upload: whoever knows its UploadId and has the creator's sub (NULL matches
-- NULL), for the bucket and key it was created for; others see no such upload (ST016). The
-- tables have RLS: request roles read their own uploads and parts (ListMultipartUploads,
-- ListParts), and write nothing directly.

-- storage_internal.s3_multipart_create(bucket_id, name, mimetype, cache_control, user_metadata,
--   expires_in) → (version, size_limit)
-- CreateMultipartUpload, as the uploader: the checks of an upsert of the key (mimetype NULL:
-- none declared, not checked), then the upload recorded, expiring expires_in after its last
-- part. Raises what storage_internal.object_write_check raises.
create or replace function storage_internal.s3_multipart_create(
  bucket_id text,
  name text,
  mimetype text,
  cache_control text,
  user_metadata jsonb,
  expires_in interval,
  out version text,
  out size_limit bigint
)
  language plpgsql
  as $$
declare
  _ok boolean;
begin
  perform storage_internal.bucket_id_check(s3_multipart_create.bucket_id);
  perform storage_internal.object_name_check(s3_multipart_create.name);
  version := storage_internal.blob_upload_begin(s3_multipart_create.bucket_id, s3_multipart_create.name);
  size_limit := storage_internal.object_write_check(s3_multipart_create.bucket_id, s3_multipart_create.name, true,
    s3_multipart_create.mimetype, null, s3_multipart_create.user_metadata, version);
  _ok := storage_internal.s3_multipart_record(version, s3_multipart_create.bucket_id, s3_multipart_create.name,
    size_limit, coalesce(s3_multipart_create.mimetype, 'application/octet-stream'),
    coalesce(s3_multipart_create.cache_control, 'no-cache'), coalesce(s3_multipart_create.user_metadata, '{}'),
    now() + s3_multipart_create.expires_in);
end
$$;
revoke all on function storage_internal.s3_multipart_create(text, text, text, text, jsonb, interval) from public;
grant execute on function storage_internal.s3_multipart_create(text, text, text, text, jsonb, interval)
  to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_create(text, text, text, text, jsonb, interval) is
  'Internal, the server''s S3 CreateMultipartUpload, as the uploader: the checks of storage_internal.object_write_check, then the upload recorded; returns its version (the UploadId) and the size limit.';

-- storage_internal.s3_multipart_record(…) → boolean
-- Writes the new upload's row. SECURITY DEFINER (request roles cannot write the table); for
-- storage_internal.s3_multipart_create only, after its checks (42501 otherwise).
create or replace function storage_internal.s3_multipart_record(version text, bucket_id text, name text,
  size_limit bigint, mimetype text, cache_control text, user_metadata jsonb, expires_at timestamptz) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage_internal.s3_multipart_create') then
    raise exception using errcode = '42501',
      message = 'storage_internal.s3_multipart_record may only be called by storage_internal.s3_multipart_create';
  end if;
  insert into storage.s3_multipart_uploads (version, bucket_id, name, owner_id, size_limit, mimetype, cache_control,
    user_metadata, expires_at)
  values (s3_multipart_record.version, s3_multipart_record.bucket_id, s3_multipart_record.name,
    nullif(current_setting('request.jwt.claim.sub', true), ''), s3_multipart_record.size_limit,
    s3_multipart_record.mimetype, s3_multipart_record.cache_control, s3_multipart_record.user_metadata,
    s3_multipart_record.expires_at);
  return true;
end
$$;
revoke all on function storage_internal.s3_multipart_record(text, text, text, bigint, text, text, jsonb, timestamptz) from public;
grant execute on function storage_internal.s3_multipart_record(text, text, text, bigint, text, text, jsonb, timestamptz)
  to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_record(text, text, text, bigint, text, text, jsonb, timestamptz) is
  'Internal, SECURITY DEFINER: writes a new S3 multipart upload''s row, for storage_internal.s3_multipart_create only (42501 otherwise).';

-- storage_internal.s3_multipart_get(version, bucket_id, name) → storage.s3_multipart_uploads
-- The caller's upload of version for this bucket and key, locked (FOR UPDATE) for the rest of
-- the caller's transaction: ST016 when unknown, another sub's, for another key, or expired.
-- SECURITY DEFINER: the UploadId is the capability, and the sub must match. For the
-- s3_multipart_* steps only (42501 otherwise).
create or replace function storage_internal.s3_multipart_get(version text, bucket_id text, name text)
  returns storage.s3_multipart_uploads
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  u storage.s3_multipart_uploads;
begin
  if not storage_internal.called_by('storage_internal.s3_multipart_part_check', 'storage_internal.s3_multipart_complete',
                                    'storage_internal.s3_multipart_commit', 'storage_internal.s3_multipart_abort') then
    raise exception using errcode = '42501',
      message = 'storage_internal.s3_multipart_get may only be called by the storage_internal.s3_multipart_* steps';
  end if;
  select * into u from storage.s3_multipart_uploads x
  where x.version = s3_multipart_get.version
    and x.bucket_id = s3_multipart_get.bucket_id and x.name collate "C" = s3_multipart_get.name
    and x.owner_id is not distinct from nullif(current_setting('request.jwt.claim.sub', true), '')
    and x.expires_at > now()
  for update;
  if not found then
    raise exception using errcode = 'ST016', message = 'Upload not found';
  end if;
  return u;
end
$$;
revoke all on function storage_internal.s3_multipart_get(text, text, text) from public;
grant execute on function storage_internal.s3_multipart_get(text, text, text) to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_get(text, text, text) is
  'Internal, SECURITY DEFINER: the caller''s S3 multipart upload for a bucket and key, locked, for the storage_internal.s3_multipart_* steps only (42501 otherwise). Raises ST016.';

-- storage_internal.s3_multipart_part_check(version, bucket_id, name, part_number, size)
--   → (blob_state, size_limit)
-- What UploadPart (and UploadPartCopy) must pass before the part's bytes move, as the
-- uploader: the caller's upload (ST016), not being completed (ST021), the RLS dry-run of the
-- object again, a part number of 1 to 10000 and a size of at most 5 GiB (ST010), and the size
-- limit counted over the parts already there, this one replacing any earlier part of its
-- number (ST008: nothing changes). Returns the store's state of the upload and the limit.
create or replace function storage_internal.s3_multipart_part_check(version text, bucket_id text, name text,
  part_number integer, size bigint, out blob_state text, out size_limit bigint)
  language plpgsql
  as $$
declare
  u storage.s3_multipart_uploads;
  _others bigint;
begin
  if s3_multipart_part_check.part_number is null or s3_multipart_part_check.part_number not between 1 and 10000 then
    raise exception using errcode = 'ST010', message = 'Part number must be an integer between 1 and 10000, inclusive';
  end if;
  if s3_multipart_part_check.size is null or s3_multipart_part_check.size not between 0 and 5368709120 then
    raise exception using errcode = 'ST008', message = 'Your proposed upload exceeds the maximum allowed size';
  end if;
  u := storage_internal.s3_multipart_get(s3_multipart_part_check.version, s3_multipart_part_check.bucket_id,
    s3_multipart_part_check.name);
  if u.completing_at is not null and u.completing_at > now() - interval '1 minute' then
    raise exception using errcode = 'ST021', message = 'A conflicting conditional operation is currently in progress against this resource. Please try again.';
  end if;
  size_limit := storage_internal.object_write_check(u.bucket_id, u.name, true, null, null, u.user_metadata, u.version);
  _others := storage_internal.s3_multipart_size(u.version, s3_multipart_part_check.part_number);
  if _others + s3_multipart_part_check.size > size_limit then
    raise exception using errcode = 'ST008', message = 'The object exceeded the maximum allowed size';
  end if;
  blob_state := u.blob_state;
end
$$;
revoke all on function storage_internal.s3_multipart_part_check(text, text, text, integer, bigint) from public;
grant execute on function storage_internal.s3_multipart_part_check(text, text, text, integer, bigint)
  to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_part_check(text, text, text, integer, bigint) is
  'Internal, the server''s S3 UploadPart check, as the uploader: the caller''s upload, the RLS dry-run again, the part number and the size limit over the parts so far; returns the store''s state of the upload and the limit. Raises ST016, ST021, ST010, ST008, ST001, 42501.';

-- storage_internal.s3_multipart_size(version, except_part) → bigint: the bytes of an upload's
-- parts but except_part. SECURITY DEFINER, for storage_internal.s3_multipart_part_check only.
create or replace function storage_internal.s3_multipart_size(version text, except_part integer) returns bigint
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage_internal.s3_multipart_part_check') then
    raise exception using errcode = '42501',
      message = 'storage_internal.s3_multipart_size may only be called by storage_internal.s3_multipart_part_check';
  end if;
  return coalesce((select sum(p.size) from storage.s3_multipart_parts p
                   where p.version = s3_multipart_size.version and p.part_number <> s3_multipart_size.except_part), 0);
end
$$;
revoke all on function storage_internal.s3_multipart_size(text, integer) from public;
grant execute on function storage_internal.s3_multipart_size(text, integer) to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_size(text, integer) is
  'Internal, SECURITY DEFINER: the size of an S3 multipart upload''s parts but one, for storage_internal.s3_multipart_part_check only (42501 otherwise).';

-- storage_internal.s3_multipart_state(version, blob_state) → boolean
-- Records the store's state of a new upload (its backing multipart upload id). For the
-- servers' role storage_server only: the state names pieces in the store, which no request
-- role may choose. ST016 when the upload is gone.
create or replace function storage_internal.s3_multipart_state(version text, blob_state text) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  update storage.s3_multipart_uploads u set blob_state = s3_multipart_state.blob_state
  where u.version = s3_multipart_state.version;
  if not found then
    raise exception using errcode = 'ST016', message = 'Upload not found';
  end if;
  return true;
end
$$;
revoke all on function storage_internal.s3_multipart_state(text, text) from public;
grant execute on function storage_internal.s3_multipart_state(text, text) to storage_server;
comment on function storage_internal.s3_multipart_state(text, text) is
  'Internal, for the servers (storage_server): records the blob store''s state of a new S3 multipart upload. Raises ST016.';

-- storage_internal.s3_multipart_part_record(version, part_number, size, etag, blob_etag,
--   expires_in) → boolean
-- Records a part the store now holds durably (replacing any earlier part of its number): its
-- size, its MD5 (etag, hex: the ETag the client gets) and the store's ETag of it (for
-- completion), and moves the upload's expiry to expires_in from now. For the servers' role
-- storage_server only (the store's ETag names a piece of the store), after
-- storage_internal.s3_multipart_part_check ran as the uploader. ST016 when the upload is gone.
create or replace function storage_internal.s3_multipart_part_record(version text, part_number integer, size bigint,
  etag text, blob_etag text, expires_in interval) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
#variable_conflict use_column
begin
  update storage.s3_multipart_uploads u
  set expires_at = greatest(u.expires_at, now() + s3_multipart_part_record.expires_in)
  where u.version = s3_multipart_part_record.version;
  if not found then
    raise exception using errcode = 'ST016', message = 'Upload not found';
  end if;
  insert into storage.s3_multipart_parts as p (version, part_number, size, etag, blob_etag)
  values (s3_multipart_part_record.version, s3_multipart_part_record.part_number, s3_multipart_part_record.size,
          s3_multipart_part_record.etag, s3_multipart_part_record.blob_etag)
  on conflict (version, part_number) do update
    set size = excluded.size, etag = excluded.etag, blob_etag = excluded.blob_etag, created_at = now();
  return true;
end
$$;
revoke all on function storage_internal.s3_multipart_part_record(text, integer, bigint, text, text, interval) from public;
grant execute on function storage_internal.s3_multipart_part_record(text, integer, bigint, text, text, interval) to storage_server;
comment on function storage_internal.s3_multipart_part_record(text, integer, bigint, text, text, interval) is
  'Internal, for the servers (storage_server): records a part of an S3 multipart upload the store holds, and extends the upload''s expiry. Raises ST016.';

-- storage_internal.s3_multipart_complete(version, bucket_id, name, part_numbers, etags)
--   → table(part_number, size, etag, blob_etag, blob_state)
-- The checks of CompleteMultipartUpload, as the uploader, before the store assembles the
-- object: the caller's upload (ST016), not already being completed (ST021), the RLS dry-run
-- again; the parts listed (part_numbers NULL: every part recorded) in ascending order
-- (ST018), each recorded with that ETag (etags: hex, quotes ignored; ST017), every part but
-- the last at least 5 MiB (ST019), at least one part (ST010), the whole within the size limit
-- (ST008). The upload is then marked as completing for a minute (its parts cannot change, a
-- second completion waits: ST021). Returns the parts in order with the store's state.
create or replace function storage_internal.s3_multipart_complete(version text, bucket_id text, name text,
  part_numbers integer[], etags text[])
  returns table (part_number integer, size bigint, etag text, blob_etag text, blob_state text)
  language plpgsql
  as $$
#variable_conflict use_column
declare
  u storage.s3_multipart_uploads;
  _limit bigint;
  _parts storage.s3_multipart_parts[];
  _p storage.s3_multipart_parts;
  _total bigint := 0;
  _i int;
  _ok boolean;
begin
  u := storage_internal.s3_multipart_get(s3_multipart_complete.version, s3_multipart_complete.bucket_id,
    s3_multipart_complete.name);
  if u.completing_at is not null and u.completing_at > now() - interval '1 minute' then
    raise exception using errcode = 'ST021', message = 'A conflicting conditional operation is currently in progress against this resource. Please try again.';
  end if;
  _limit := storage_internal.object_write_check(u.bucket_id, u.name, true, null, null, u.user_metadata, u.version);
  _parts := storage_internal.s3_multipart_parts_of(u.version);
  if s3_multipart_complete.part_numbers is not null then
    if cardinality(s3_multipart_complete.part_numbers) is distinct from cardinality(s3_multipart_complete.etags) then
      raise exception using errcode = 'ST010', message = 'Each part needs a PartNumber and an ETag';
    end if;
    for _i in 1 .. coalesce(cardinality(s3_multipart_complete.part_numbers), 0) loop
      if _i > 1 and s3_multipart_complete.part_numbers[_i] <= s3_multipart_complete.part_numbers[_i - 1] then
        raise exception using errcode = 'ST018', message = 'The list of parts was not in ascending order. The parts list must be specified in order by part number.';
      end if;
    end loop;
    _parts := array(
      select x from unnest(s3_multipart_complete.part_numbers, s3_multipart_complete.etags) with ordinality as l(n, e, i)
      left join unnest(_parts) x on x.part_number = l.n and x.etag = lower(trim(both '"' from l.e))
      order by l.i);
    for _i in 1 .. cardinality(_parts) loop
      if (_parts[_i]).part_number is null then
        raise exception using errcode = 'ST017', message = format(
          'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part''s entity tag. (PartNumber %s)',
          s3_multipart_complete.part_numbers[_i]);
      end if;
    end loop;
  end if;
  if coalesce(cardinality(_parts), 0) = 0 then
    raise exception using errcode = 'ST010', message = 'You must specify at least one part';
  end if;
  for _i in 1 .. cardinality(_parts) loop
    _p := _parts[_i];
    if _i < cardinality(_parts) and _p.size < 5242880 then
      raise exception using errcode = 'ST019', message = format(
        'Your proposed upload is smaller than the minimum allowed size (PartNumber %s is %s bytes; every part but the last must be at least 5 MiB)',
        _p.part_number, _p.size);
    end if;
    _total := _total + _p.size;
  end loop;
  if _total > _limit then
    raise exception using errcode = 'ST008', message = 'The object exceeded the maximum allowed size';
  end if;
  _ok := storage_internal.s3_multipart_completing(u.version);
  return query select (x).part_number, (x).size, (x).etag, (x).blob_etag, u.blob_state from unnest(_parts) x;
end
$$;
revoke all on function storage_internal.s3_multipart_complete(text, text, text, integer[], text[]) from public;
grant execute on function storage_internal.s3_multipart_complete(text, text, text, integer[], text[])
  to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_complete(text, text, text, integer[], text[]) is
  'Internal, the server''s S3 CompleteMultipartUpload check, as the uploader: the caller''s upload, the RLS dry-run, the parts listed (order, ETags, 5 MiB minimum, size limit); marks the upload completing and returns its parts. Raises ST016, ST021, ST017, ST018, ST019, ST010, ST008, ST001, 42501.';

-- storage_internal.s3_multipart_parts_of(version) → storage.s3_multipart_parts[]: an upload's
-- parts by number. SECURITY DEFINER, for storage_internal.s3_multipart_complete only.
create or replace function storage_internal.s3_multipart_parts_of(version text) returns storage.s3_multipart_parts[]
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage_internal.s3_multipart_complete') then
    raise exception using errcode = '42501',
      message = 'storage_internal.s3_multipart_parts_of may only be called by storage_internal.s3_multipart_complete';
  end if;
  return array(select p from storage.s3_multipart_parts p
               where p.version = s3_multipart_parts_of.version order by p.part_number);
end
$$;
revoke all on function storage_internal.s3_multipart_parts_of(text) from public;
grant execute on function storage_internal.s3_multipart_parts_of(text) to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_parts_of(text) is
  'Internal, SECURITY DEFINER: an S3 multipart upload''s parts, for storage_internal.s3_multipart_complete only (42501 otherwise).';

-- storage_internal.s3_multipart_completing(version) → boolean: marks the upload as being
-- completed. SECURITY DEFINER, for storage_internal.s3_multipart_complete only.
create or replace function storage_internal.s3_multipart_completing(version text) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage_internal.s3_multipart_complete') then
    raise exception using errcode = '42501',
      message = 'storage_internal.s3_multipart_completing may only be called by storage_internal.s3_multipart_complete';
  end if;
  update storage.s3_multipart_uploads u set completing_at = now() where u.version = s3_multipart_completing.version;
  return found;
end
$$;
revoke all on function storage_internal.s3_multipart_completing(text) from public;
grant execute on function storage_internal.s3_multipart_completing(text) to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_completing(text) is
  'Internal, SECURITY DEFINER: marks an S3 multipart upload as being completed, for storage_internal.s3_multipart_complete only (42501 otherwise).';

-- storage_internal.s3_multipart_commit(version, bucket_id, name, size, etag) → uuid
-- Completes the caller's upload once the store made its blob (size bytes under its version):
-- the row is written by storage_internal.object_upload_commit as for a REST upload (an
-- upsert, as the uploader, under the caller's policies now; the creator owns it; the upload's
-- content type, cache control and user metadata; eTag etag: "<hex>-<parts>"), and the upload
-- and its parts go. Returns the object's id.
create or replace function storage_internal.s3_multipart_commit(version text, bucket_id text, name text,
  size bigint, etag text) returns uuid
  language plpgsql
  as $$
declare
  u storage.s3_multipart_uploads;
  _id uuid;
  _ok boolean;
begin
  u := storage_internal.s3_multipart_get(s3_multipart_commit.version, s3_multipart_commit.bucket_id, s3_multipart_commit.name);
  _id := storage_internal.object_upload_commit(u.bucket_id, u.name, u.version, true, u.owner_id,
    s3_multipart_commit.size, s3_multipart_commit.etag, u.mimetype, u.cache_control, u.user_metadata);
  _ok := storage_internal.s3_multipart_forget(u.version);
  return _id;
end
$$;
revoke all on function storage_internal.s3_multipart_commit(text, text, text, bigint, text) from public;
grant execute on function storage_internal.s3_multipart_commit(text, text, text, bigint, text)
  to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_commit(text, text, text, bigint, text) is
  'Internal, the server''s S3 CompleteMultipartUpload commit, as the uploader: writes the object row through storage_internal.object_upload_commit and removes the upload; returns the object id. Raises ST016, ST004, ST010, 42501.';

-- storage_internal.s3_multipart_forget(version) → boolean: removes a completed upload's row
-- (its parts go with it). SECURITY DEFINER, for storage_internal.s3_multipart_commit only.
create or replace function storage_internal.s3_multipart_forget(version text) returns boolean
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage_internal.s3_multipart_commit') then
    raise exception using errcode = '42501',
      message = 'storage_internal.s3_multipart_forget may only be called by storage_internal.s3_multipart_commit';
  end if;
  delete from storage.s3_multipart_uploads u where u.version = s3_multipart_forget.version;
  return found;
end
$$;
revoke all on function storage_internal.s3_multipart_forget(text) from public;
grant execute on function storage_internal.s3_multipart_forget(text) to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_forget(text) is
  'Internal, SECURITY DEFINER: removes a completed S3 multipart upload, for storage_internal.s3_multipart_commit only (42501 otherwise).';

-- storage_internal.s3_multipart_abort(version, bucket_id, name) → text (the store's state)
-- AbortMultipartUpload, as the uploader: the caller's upload (ST016), the RLS dry-run (only a
-- caller who may write the object ends its upload), then the upload ends as an aborted upload
-- does (storage_internal.object_upload_abort: its row, parts and in-flight entry go, its blob
-- version is queued). Returns the store's state for the server to discard the parts.
create or replace function storage_internal.s3_multipart_abort(version text, bucket_id text, name text) returns text
  language plpgsql
  as $$
declare
  u storage.s3_multipart_uploads;
  _limit bigint;
begin
  u := storage_internal.s3_multipart_get(s3_multipart_abort.version, s3_multipart_abort.bucket_id, s3_multipart_abort.name);
  _limit := storage_internal.object_write_check(u.bucket_id, u.name, true, null, null, u.user_metadata, u.version);
  perform storage_internal.object_upload_abort(u.version);
  return u.blob_state;
end
$$;
revoke all on function storage_internal.s3_multipart_abort(text, text, text) from public;
grant execute on function storage_internal.s3_multipart_abort(text, text, text) to anon, authenticated, service_role;
comment on function storage_internal.s3_multipart_abort(text, text, text) is
  'Internal, the server''s S3 AbortMultipartUpload, as the uploader: the caller''s upload, the RLS dry-run, then the upload aborted; returns the store''s state. Raises ST016, ST001, 42501.';

-- storage.s3_list_multipart_uploads(bucket_id, prefix, delimiter, key_marker,
--   upload_id_marker, max_uploads) → table(name, version, created_at, is_prefix)
-- ListMultipartUploads: the uploads in progress in a bucket that the caller may see (RLS: its
-- own, by sub; the service role all), by key (byte order) then creation, after
-- (key_marker, upload_id_marker): keys after key_marker, and with upload_id_marker the
-- uploads of key_marker itself created after that upload. With a delimiter, keys with it after
-- the prefix fold into their common prefix (is_prefix). At most max_uploads rows (the caller
-- asks for one more than its page). ST001 missing bucket (whatever RLS), ST006.
create or replace function storage.s3_list_multipart_uploads(bucket_id text, prefix text default '',
  delimiter text default null, key_marker text default null, upload_id_marker text default null,
  max_uploads integer default 1001)
  returns table (name text, version text, created_at timestamptz, is_prefix boolean)
  language plpgsql stable
  as $$
#variable_conflict use_column
declare
  _p text := coalesce(s3_list_multipart_uploads.prefix, '');
  _d text := nullif(s3_list_multipart_uploads.delimiter, '');
  _marker_created timestamptz;
begin
  perform storage_internal.bucket_id_check(s3_list_multipart_uploads.bucket_id);
  perform storage_internal.bucket_lookup(s3_list_multipart_uploads.bucket_id);
  if s3_list_multipart_uploads.upload_id_marker is not null then
    select u.created_at into _marker_created from storage.s3_multipart_uploads u
    where u.version = s3_list_multipart_uploads.upload_id_marker;
  end if;
  return query
    with live as (
      select u.name, u.version, u.created_at,
             case when _d is not null and position(_d in substr(u.name, length(_p) + 1)) > 0
                  then _p || left(substr(u.name, length(_p) + 1), position(_d in substr(u.name, length(_p) + 1)) + length(_d) - 1)
             end as cp
      from storage.s3_multipart_uploads u
      where u.bucket_id = s3_list_multipart_uploads.bucket_id and starts_with(u.name, _p) and u.expires_at > now()
        and (s3_list_multipart_uploads.key_marker is null
             or u.name collate "C" > s3_list_multipart_uploads.key_marker
             or (u.name = s3_list_multipart_uploads.key_marker and _marker_created is not null
                 and (u.created_at, u.version) > (_marker_created, s3_list_multipart_uploads.upload_id_marker)))
    ), entries as (
      select l.name, l.version, l.created_at, false as is_prefix, l.name as k from live l where l.cp is null
      union all
      select distinct on (l.cp) l.cp, null::text, null::timestamptz, true, l.cp from live l where l.cp is not null
        and (s3_list_multipart_uploads.key_marker is null or l.cp collate "C" > s3_list_multipart_uploads.key_marker)
    )
    select e.name, e.version, e.created_at, e.is_prefix from entries e
    order by e.k collate "C", e.created_at, e.version
    limit least(greatest(coalesce(s3_list_multipart_uploads.max_uploads, 1001), 0), 10001);
end
$$;
comment on function storage.s3_list_multipart_uploads(text, text, text, text, text, integer) is
  'S3 ListMultipartUploads: the uploads in progress the caller may see (RLS: its own; the service role all), by key and creation, after a key and upload marker, folded at a delimiter. Raises ST006, ST001 missing bucket.';

-- storage.s3_list_parts(version, bucket_id, name, part_number_marker, max_parts)
--   → table(part_number, size, etag, created_at)
-- ListParts: the parts of an upload in progress that the caller may see (RLS: its own; the
-- service role all), after part_number_marker, at most max_parts (the caller asks for one more
-- than its page). ST016 when the upload is not there for the caller.
create or replace function storage.s3_list_parts(version text, bucket_id text, name text,
  part_number_marker integer default 0, max_parts integer default 1001)
  returns table (part_number integer, size bigint, etag text, created_at timestamptz)
  language plpgsql stable
  as $$
#variable_conflict use_column
begin
  if not exists (select from storage.s3_multipart_uploads u
                 where u.version = s3_list_parts.version and u.bucket_id = s3_list_parts.bucket_id
                   and u.name collate "C" = s3_list_parts.name and u.expires_at > now()) then
    raise exception using errcode = 'ST016', message = 'Upload not found';
  end if;
  return query
    select p.part_number, p.size, p.etag, p.created_at from storage.s3_multipart_parts p
    where p.version = s3_list_parts.version and p.part_number > coalesce(s3_list_parts.part_number_marker, 0)
    order by p.part_number
    limit least(greatest(coalesce(s3_list_parts.max_parts, 1001), 0), 10001);
end
$$;
comment on function storage.s3_list_parts(text, text, text, integer, integer) is
  'S3 ListParts: the parts of an upload in progress the caller may see (RLS: its own; the service role all), by number after a marker. Raises ST016.';

-- storage_internal.s3_multipart_expire() → table(version, blob_state)
-- For the collector (storage_server): removes the uploads whose expiry passed (no part for
-- that long): they end as an aborted upload does (their in-flight entry goes, their blob
-- version is queued). Returns each one's store state, for the collector to discard its parts.
create or replace function storage_internal.s3_multipart_expire() returns table (version text, blob_state text)
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    with gone as (
      delete from storage.s3_multipart_uploads u where u.expires_at <= now()
      returning u.version, u.bucket_id, u.blob_state
    ), ended as (
      delete from storage.blob_uploads b using gone g where b.version = g.version
      returning b.version, b.bucket_id
    ), queued as (
      insert into storage.blobs_freed (version, bucket_id)
      select e.version, e.bucket_id from ended e
      where not exists (select from storage.objects o where o.version = e.version)
    )
    select g.version, g.blob_state from gone g
  $$;
revoke all on function storage_internal.s3_multipart_expire() from public;
grant execute on function storage_internal.s3_multipart_expire() to storage_server;
comment on function storage_internal.s3_multipart_expire() is
  'Internal, for the collector (storage_server): removes expired S3 multipart uploads, queues their blobs and returns their store states.';
