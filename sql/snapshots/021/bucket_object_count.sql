-- storage_internal.bucket_object_count(id, up_to) → bigint
-- Counts the objects of a bucket, stopping at up_to, whatever the caller's RLS allows it to
-- see: delete and empty must know whether a bucket holds objects the caller cannot see, as the
-- reference checks with its service role. Raises ST001 when the bucket does not exist. Takes no
-- lock. SECURITY DEFINER (the owner bypasses RLS), so it answers only storage.bucket_delete and
-- storage.bucket_empty (storage_internal.called_by); a direct call is refused (42501). Through
-- them it discloses what the reference's delete and empty disclose: existence, and emptiness
-- or a count above the empty cap.
create or replace function storage_internal.bucket_object_count(id text, up_to bigint)
  returns bigint
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
#variable_conflict use_column
declare
  n bigint;
begin
  if not storage_internal.called_by('storage.bucket_delete', 'storage.bucket_empty') then
    raise exception using errcode = '42501',
      message = 'storage_internal.bucket_object_count may only be called by storage.bucket_delete and storage.bucket_empty';
  end if;
  perform from storage.buckets b where b.id = bucket_object_count.id;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
  select count(*) into n
  from (select from storage.objects o where o.bucket_id = bucket_object_count.id limit up_to) s;
  return n;
end
$$;
revoke all on function storage_internal.bucket_object_count(text, bigint) from public;
grant execute on function storage_internal.bucket_object_count(text, bigint) to anon, authenticated, service_role;
comment on function storage_internal.bucket_object_count(text, bigint) is
  'Internal, SECURITY DEFINER: counts a bucket''s objects up to a bound whatever the caller''s policies, for storage.bucket_delete and storage.bucket_empty only (42501 otherwise); ST001 when missing. No lock.';
