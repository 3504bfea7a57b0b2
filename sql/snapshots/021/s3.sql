-- The S3 door's own shapes of listing and deleting. Everything else the S3 protocol does is a
-- call of the REST API's functions (bucket_*, object_info, object_upload_*, object_copy,
-- object_delete): the same rules by construction.

-- storage.s3_list_objects(bucket_id, prefix, delimiter, start_after, max_keys)
--   → table(name text, is_prefix boolean, updated_at timestamptz, metadata jsonb)
-- ListObjects (v1 and v2): the keys under a raw, case-sensitive prefix that the calling role
-- may see (RLS SELECT; hidden rows neither listed nor folded into a common prefix), in byte
-- order, strictly after start_after, at most max_keys entries (the caller asks for one more
-- than its page to learn whether the listing is truncated). With a delimiter (any string),
-- every key with the delimiter after the prefix is folded into its common prefix (prefix +
-- the text through the first delimiter), listed once at its sort position (is_prefix true,
-- updated_at and metadata NULL). A start_after that is a common prefix itself (it ends with
-- the delimiter, its first after the prefix: what the S3 door's markers and tokens carry after
-- a page that ended on one, as AWS's NextMarker does) resumes past that whole prefix. Cost: one index range scan without a delimiter; with one, one index probe
-- per entry, skipping over each common prefix, so a page costs the same whatever the bucket
-- holds. The bucket is looked up whatever the caller's RLS, as the reference does (ST001
-- missing); ST006 invalid bucket id.
create or replace function storage.s3_list_objects(
  bucket_id text,
  prefix text default '',
  delimiter text default null,
  start_after text default null,
  max_keys integer default 1001
) returns table (name text, is_prefix boolean, updated_at timestamptz, metadata jsonb)
  language plpgsql stable
  as $$
#variable_conflict use_column
declare
  _p text := coalesce(s3_list_objects.prefix, '');
  _upper text := storage_internal.prefix_successor(coalesce(s3_list_objects.prefix, ''));
  _d text := nullif(s3_list_objects.delimiter, '');
  _want int := least(greatest(coalesce(s3_list_objects.max_keys, 1001), 0), 10001);
  _lo text := coalesce(s3_list_objects.prefix, '');
  _after text := s3_list_objects.start_after;
  _rel text;
  _pos int;
  _n int := 0;
  o record;
begin
  perform storage_internal.bucket_id_check(s3_list_objects.bucket_id);
  perform storage_internal.bucket_lookup(s3_list_objects.bucket_id);
  -- Resume strictly after start_after (keys never hold control characters, so the key
  -- followed by \x01 is the first string after it), or past every key of the common prefix it
  -- names.
  if _after is not null then
    _rel := substr(_after, length(_p) + 1);
    if _d is not null and starts_with(_after, _p) and _rel <> ''
       and position(_d in _rel) = length(_rel) - length(_d) + 1 then
      _after := storage_internal.prefix_successor(_after);
    else
      _after := _after || E'\x01';
    end if;
    if _after collate "C" > _lo then
      _lo := _after;
    end if;
  end if;

  if _d is null then
    return query
      select x.name, false, x.updated_at, x.metadata
      from storage.objects x
      where x.bucket_id = s3_list_objects.bucket_id
        and x.name collate "C" >= _lo and (_upper is null or x.name collate "C" < _upper)
      order by x.name collate "C"
      limit _want;
    return;
  end if;

  while _n < _want loop
    select x.name, x.updated_at, x.metadata into o from storage.objects x
    where x.bucket_id = s3_list_objects.bucket_id and x.name collate "C" >= _lo
      and (_upper is null or x.name collate "C" < _upper)
    order by x.name collate "C" limit 1;
    exit when not found;
    _rel := substr(o.name, length(_p) + 1);
    _pos := position(_d in _rel);
    if _pos > 0 then
      name := _p || left(_rel, _pos + length(_d) - 1);
      is_prefix := true; updated_at := null; metadata := null;
      _lo := storage_internal.prefix_successor(name);
    else
      name := o.name; is_prefix := false; updated_at := o.updated_at; metadata := o.metadata;
      _lo := o.name || E'\x01';
    end if;
    return next;
    _n := _n + 1;
  end loop;
end
$$;
comment on function storage.s3_list_objects(text, text, text, text, integer) is
  'S3 listing: keys under a raw prefix that the caller may see (RLS: SELECT policy), in byte order after a start key, with common prefixes folded at any delimiter. Raises ST006 bad bucket id, ST001 missing bucket.';

-- storage.s3_delete_object(bucket_id, name) → void
-- DeleteObject: storage.object_delete as the calling role, except that a key that does not
-- exist in an existing bucket is no error (S3 deletes are idempotent); a missing bucket is
-- ST001. Errors: ST006, ST001, ST011 (exists but the caller may not delete it), 42501.
create or replace function storage.s3_delete_object(bucket_id text, name text) returns void
  language plpgsql
  as $$
begin
  perform storage.object_delete(s3_delete_object.bucket_id, s3_delete_object.name);
exception when sqlstate 'ST002' then
  perform storage_internal.bucket_lookup(s3_delete_object.bucket_id);
end
$$;
comment on function storage.s3_delete_object(text, text) is
  'S3 DeleteObject: storage.object_delete as the caller, where a missing key in an existing bucket is success. Raises ST006, ST001 missing bucket, ST011 not deletable by the caller.';

-- storage.s3_delete_objects(bucket_id, names) → table(name text, deleted boolean)
-- DeleteObjects: deletes the objects with exactly these names that the calling role may
-- delete (RLS: DELETE and SELECT policies) and answers for every name given, in order:
-- deleted true when it was deleted or does not exist, false when it exists but the caller may
-- not delete it (the reference tells them apart with its service role; so does
-- storage.object_delete). Blobs are queued by the objects_free_blobs trigger. When nothing was
-- deleted and nothing exists, a missing bucket is ST001. ST006 invalid bucket id.
create or replace function storage.s3_delete_objects(bucket_id text, names text[])
  returns table (name text, deleted boolean)
  language plpgsql
  as $$
#variable_conflict use_column
declare
  _gone text[];
  _rest text[];
  _kept text[];
begin
  perform storage_internal.bucket_id_check(s3_delete_objects.bucket_id);
  with d as (
    delete from storage.objects o
    where o.bucket_id = s3_delete_objects.bucket_id and o.name collate "C" = any (s3_delete_objects.names)
    returning o.name
  ) select coalesce(array_agg(d.name), '{}') into _gone from d;
  _rest := array(select n from unnest(s3_delete_objects.names) n where n <> all (_gone));
  -- The helper's arguments are plain variables: an expression holding a subquery runs as a
  -- statement of its own, a stack frame storage_internal.called_by would refuse.
  _kept := storage_internal.objects_existing(s3_delete_objects.bucket_id, _rest);
  if cardinality(_gone) = 0 and cardinality(_kept) = 0 then
    perform storage_internal.bucket_lookup(s3_delete_objects.bucket_id);
  end if;
  return query select n, n <> all (_kept) from unnest(s3_delete_objects.names) n;
end
$$;
comment on function storage.s3_delete_objects(text, text[]) is
  'S3 DeleteObjects: deletes the named objects the caller may delete (RLS: DELETE and SELECT policies) and answers per name whether it is gone (deleted or missing) or kept (not deletable by the caller). Raises ST006, ST001 missing bucket when nothing was there.';

-- storage_internal.objects_existing(bucket_id, names) → text[]: which of the names exist,
-- whatever the caller's RLS, for storage.s3_delete_objects only (storage_internal.called_by;
-- a direct call is refused, 42501): it tells "not found" from "not allowed" as
-- storage_internal.object_exists does for storage.object_delete. SECURITY DEFINER.
create or replace function storage_internal.objects_existing(bucket_id text, names text[]) returns text[]
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage.s3_delete_objects') then
    raise exception using errcode = '42501', message = 'storage_internal.objects_existing may only be called by storage.s3_delete_objects';
  end if;
  return array(select o.name from storage.objects o
               where o.bucket_id = objects_existing.bucket_id and o.name collate "C" = any (objects_existing.names));
end
$$;
revoke all on function storage_internal.objects_existing(text, text[]) from public;
grant execute on function storage_internal.objects_existing(text, text[]) to anon, authenticated, service_role;
comment on function storage_internal.objects_existing(text, text[]) is
  'Internal, SECURITY DEFINER: which of the names exist whatever the caller''s policies, for storage.s3_delete_objects only (42501 otherwise).';
