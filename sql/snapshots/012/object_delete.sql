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
  perform storage.bucket_id_check(object_delete.bucket_id);
  delete from storage.objects o where o.bucket_id = object_delete.bucket_id and o.name collate "C" = object_delete.name;
  if found then
    return;
  end if;
  if storage.object_exists(object_delete.bucket_id, object_delete.name) then
    raise exception using errcode = 'ST011', message = 'Access denied';
  end if;
  raise exception using errcode = 'ST002', message = 'Object not found';
end
$$;

-- storage.object_exists(bucket_id, name) → boolean, whatever the caller's RLS: delete tells
-- "not found" from "not allowed" as the reference does. SECURITY DEFINER; discloses existence
-- only.
create or replace function storage.object_exists(bucket_id text, name text) returns boolean
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  return exists (select from storage.objects o
                 where o.bucket_id = object_exists.bucket_id and o.name collate "C" = object_exists.name);
end
$$;
revoke all on function storage.object_exists(text, text) from public;
grant execute on function storage.object_exists(text, text) to anon, authenticated, service_role;
