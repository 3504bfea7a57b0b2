-- storage.bucket_empty(id) → void
-- Deletes every object of a bucket that the calling role may delete (RLS: DELETE and SELECT
-- policies; service_role deletes all). The bucket must be visible to the caller, and a bucket
-- holding more than 200 000 objects is refused, as in the reference.
-- Hook: for now the rows go in this transaction; the blob lifecycle work turns this into a
-- durable job that frees blobs and keeps the same signature.
-- Errors: ST001 missing or hidden, ST013 too many objects.
create or replace function storage.bucket_empty(id text) returns void
  language plpgsql
  as $$
#variable_conflict use_column
declare
  max_objects constant bigint := 200000;
begin
  perform from storage.buckets where id = bucket_empty.id;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
  if storage.bucket_object_count(bucket_empty.id, max_objects + 1) > max_objects then
    raise exception using errcode = 'ST013',
      message = 'Unable to empty the bucket because it contains too many objects';
  end if;
  delete from storage.objects where bucket_id = bucket_empty.id;
end
$$;
