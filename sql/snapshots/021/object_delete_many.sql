-- storage.object_delete_many(bucket_id, names) → setof storage.objects
-- Deletes the objects with exactly these names (not prefixes: 'folder' does not delete
-- 'folder/a') as the calling role (RLS: DELETE and SELECT policies) and returns the rows
-- deleted. Names that do not exist or the caller may not delete are skipped silently; a
-- missing bucket deletes nothing; an invalid bucket id is ST006. Blobs are queued by the
-- objects_free_blobs trigger.
create or replace function storage.object_delete_many(bucket_id text, names text[]) returns setof storage.objects
  language plpgsql
  as $$
begin
  perform storage_internal.bucket_id_check(object_delete_many.bucket_id);
  return query
    delete from storage.objects o
    where o.bucket_id = object_delete_many.bucket_id and o.name collate "C" = any (object_delete_many.names)
    returning o.*;
end
$$;
comment on function storage.object_delete_many(text, text[]) is
  'Deletes the objects with exactly these names that the caller may delete (RLS: DELETE and SELECT policies) and returns them; others are skipped. Raises ST006 bad bucket id.';
