-- storage.bucket_delete(id) → void
-- Deletes an empty bucket as the calling role (RLS: DELETE and SELECT policies on
-- storage.buckets). The foreign key from storage.objects makes the emptiness check atomic: an
-- upload committing meanwhile either lands first (the delete then fails: not empty) or waits
-- for the delete (and then finds no bucket). No lock is taken on a bucket the caller may not
-- delete. When the caller deleted nothing, the answer is the reference's, which checks with its
-- service role: not empty (ST005) if the bucket holds objects, else not found (ST001).
-- Errors: ST001 missing, or hidden from the caller's DELETE; ST005 not empty.
create or replace function storage.bucket_delete(id text) returns void
  language plpgsql
  as $$
#variable_conflict use_column
begin
  begin
    delete from storage.buckets where id = bucket_delete.id;
  exception when foreign_key_violation then
    raise exception using errcode = 'ST005', message = 'The bucket you tried to delete is not empty';
  end;
  if found then
    return;
  end if;
  if storage_internal.bucket_object_count(bucket_delete.id, 1) > 0 then
    raise exception using errcode = 'ST005', message = 'The bucket you tried to delete is not empty';
  end if;
  raise exception using errcode = 'ST001', message = 'Bucket not found';
end
$$;
comment on function storage.bucket_delete(text) is
  'Deletes an empty bucket as the caller (RLS: DELETE and SELECT policies on storage.buckets). Raises ST001 missing or hidden, ST005 not empty.';
