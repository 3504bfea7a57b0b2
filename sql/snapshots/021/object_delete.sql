-- storage.object_delete(bucket_id, name) → void
-- Deletes one object as the calling role (RLS: DELETE and SELECT policies). A key that does
-- not exist at all is ST002 (even when the bucket is missing); one that exists but the caller
-- may not delete is ST011 'Access denied'. An invalid bucket id is ST006. The blob is queued for collection by the
-- objects_free_blobs trigger in the same transaction.
create or replace function storage.object_delete(bucket_id text, name text) returns void
  language plpgsql
  as $$
#variable_conflict use_column
begin
  perform storage_internal.bucket_id_check(object_delete.bucket_id);
  delete from storage.objects o where o.bucket_id = object_delete.bucket_id and o.name collate "C" = object_delete.name;
  if found then
    return;
  end if;
  if storage_internal.object_exists(object_delete.bucket_id, object_delete.name) then
    raise exception using errcode = 'ST011', message = 'Access denied';
  end if;
  raise exception using errcode = 'ST002', message = 'Object not found';
end
$$;
comment on function storage.object_delete(text, text) is
  'Deletes one object as the caller (RLS: DELETE and SELECT policies); its blob is queued for collection. Raises ST006 bad bucket id, ST002 missing, ST011 exists but not deletable by the caller.';

-- storage_internal.object_exists(bucket_id, name) → boolean, whatever the caller's RLS: delete
-- tells "not found" from "not allowed" as the reference does (it looks the row up with its
-- service role). SECURITY DEFINER, so it answers storage.object_delete only
-- (storage_internal.called_by): a direct call is refused (42501).
create or replace function storage_internal.object_exists(bucket_id text, name text) returns boolean
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not storage_internal.called_by('storage.object_delete') then
    raise exception using errcode = '42501', message = 'storage_internal.object_exists may only be called by storage.object_delete';
  end if;
  return exists (select from storage.objects o
                 where o.bucket_id = object_exists.bucket_id and o.name collate "C" = object_exists.name);
end
$$;
revoke all on function storage_internal.object_exists(text, text) from public;
grant execute on function storage_internal.object_exists(text, text) to anon, authenticated, service_role;
comment on function storage_internal.object_exists(text, text) is
  'Internal, SECURITY DEFINER: whether a key exists whatever the caller''s policies, for storage.object_delete only (42501 otherwise).';
