-- storage.bucket_update(id, public, file_size_limit, allowed_mime_types,
--                       clear_file_size_limit, clear_allowed_mime_types) → storage.buckets
-- Changes the given settings of a bucket as the calling role (RLS: SELECT and UPDATE policies)
-- and returns the updated row. A NULL argument leaves its setting unchanged; to remove a limit
-- pass clear_file_size_limit => true or clear_allowed_mime_types => true. updated_at is not
-- bumped (as in the reference). Validation as in storage.bucket_create.
-- Errors: ST010 nothing to change or bad size, ST008, ST009, ST001 missing or hidden, 42501.
create or replace function storage.bucket_update(
  id text,
  public boolean default null,
  file_size_limit text default null,
  allowed_mime_types text[] default null,
  clear_file_size_limit boolean default false,
  clear_allowed_mime_types boolean default false
) returns storage.buckets
  language plpgsql
  as $$
#variable_conflict use_column
declare
  _limit bigint := storage_internal.size_parse(bucket_update.file_size_limit);
  _types text[] := storage_internal.mime_types_check(bucket_update.allowed_mime_types);
  b storage.buckets;
begin
  if bucket_update.public is null and _limit is null and _types is null
     and not coalesce(bucket_update.clear_file_size_limit, false)
     and not coalesce(bucket_update.clear_allowed_mime_types, false) then
    raise exception using errcode = 'ST010', message = 'No bucket setting to change was given';
  end if;
  perform storage_internal.bucket_size_limit_check(_limit);

  update storage.buckets
  set public = coalesce(bucket_update.public, public),
      file_size_limit = case when bucket_update.clear_file_size_limit then null
                             else coalesce(_limit, file_size_limit) end,
      allowed_mime_types = case when bucket_update.clear_allowed_mime_types then null
                                else coalesce(_types, allowed_mime_types) end
  where id = bucket_update.id
  returning * into b;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
  return b;
end
$$;
comment on function storage.bucket_update(text, boolean, text, text[], boolean, boolean) is
  'Changes a bucket''s public flag and limits as the caller (RLS: SELECT and UPDATE policies) and returns it; NULL leaves a setting alone, clear_* removes a limit. Raises ST010, ST008, ST009, ST001 missing or hidden, 42501.';
