-- storage.bucket_create(name, id, public, file_size_limit, allowed_mime_types, type) → text
-- Creates a bucket as the calling role (RLS: needs an INSERT policy on storage.buckets unless
-- the role bypasses RLS) and returns its id. id defaults to name; both are validated (the
-- reference validates only name: we refuse an id that object routes could never address).
-- file_size_limit is bytes as digits or a size string ('20MB', see storage_internal.size_parse); it may
-- not exceed the server's global limit. allowed_mime_types entries must be MIME types or end in
-- '*'. owner_id = the caller's JWT sub; owner = the sub when it is a UUID.
-- Errors: ST006 invalid name, ST010 bad size, ST008 size above global, ST009 bad MIME,
-- ST014 type ANALYTICS/VECTOR (not supported), ST003 duplicate id or name, 42501 RLS.
create or replace function storage.bucket_create(
  name text,
  id text default null,
  public boolean default false,
  file_size_limit text default null,
  allowed_mime_types text[] default null,
  type text default 'STANDARD'
) returns text
  language plpgsql
  as $$
#variable_conflict use_column
declare
  _id text := coalesce(bucket_create.id, bucket_create.name);
  _sub text := nullif(current_setting('request.jwt.claim.sub', true), '');
  _limit bigint := storage_internal.size_parse(bucket_create.file_size_limit);
  _types text[] := storage_internal.mime_types_check(bucket_create.allowed_mime_types);
begin
  perform storage_internal.bucket_name_check(bucket_create.name);
  if _id is distinct from bucket_create.name then
    perform storage_internal.bucket_name_check(_id);
  end if;
  perform storage_internal.bucket_size_limit_check(_limit);
  if coalesce(bucket_create.type, 'STANDARD') <> 'STANDARD' then
    raise exception using errcode = 'ST014',
      message = format('Bucket type %s is not supported by this server', bucket_create.type);
  end if;

  begin
    insert into storage.buckets (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types)
    values (
      _id,
      bucket_create.name,
      storage_internal.uuid_or_null(_sub),
      _sub,
      coalesce(bucket_create.public, false),
      _limit,
      _types
    );
  exception when unique_violation then
    raise exception using errcode = 'ST003', message = 'The resource already exists';
  end;
  return _id;
end
$$;
comment on function storage.bucket_create(text, text, boolean, text, text[], text) is
  'Creates a bucket as the caller (RLS: INSERT policy on storage.buckets) and returns its id. Raises ST006 bad name, ST010 bad size, ST008 size above the server limit, ST009 bad MIME type, ST014 unsupported type, ST003 duplicate, 42501 RLS.';
