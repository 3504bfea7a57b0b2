-- storage.bucket_delete(id) → void
-- Deletes an empty bucket as the calling role (RLS: DELETE and SELECT policies on
-- storage.buckets). The foreign key from storage.objects makes the emptiness check atomic: an
-- upload committing meanwhile either lands first (the delete then fails: not empty) or waits
-- for the delete (and then finds no bucket). No lock is taken on a bucket the caller may not
-- delete. When the caller deleted nothing, the answer is the reference's, which checks with its
-- service role: not empty (ST005) if the bucket holds objects, else not found (ST001).
-- Errors: ST001 missing, or hidden from the caller's DELETE; ST005 not empty; ST020 a
-- pending S3 multipart upload.
create or replace function storage.bucket_delete(id text) returns void
  language plpgsql
  as $$
#variable_conflict use_column
declare
  _table text;
begin
  begin
    delete from storage.buckets where id = bucket_delete.id;
  exception when foreign_key_violation then
    get stacked diagnostics _table = table_name;
    if _table = 's3_multipart_uploads' then
      raise exception using errcode = 'ST020',
        message = 'The bucket could not be updated because it is referenced by a pending multipart upload.';
    end if;
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
  'Deletes an empty bucket as the caller (RLS: DELETE and SELECT policies on storage.buckets). Raises ST001 missing or hidden, ST005 not empty, ST020 pending multipart upload.';
