-- storage.bucket_delete(id) → void
-- Deletes an empty bucket. Existence and emptiness are checked whatever the caller may see
-- (storage.bucket_object_count, which also locks the bucket row so no upload slips in); the
-- DELETE itself runs as the calling role (RLS: DELETE and SELECT policies).
-- Errors: ST001 missing, or hidden from the caller's DELETE; ST005 not empty.
create or replace function storage.bucket_delete(id text) returns void
  language plpgsql
  as $$
#variable_conflict use_column
begin
  if storage.bucket_object_count(bucket_delete.id, 1, true) > 0 then
    raise exception using errcode = 'ST005', message = 'The bucket you tried to delete is not empty';
  end if;
  delete from storage.buckets where id = bucket_delete.id;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
end
$$;
