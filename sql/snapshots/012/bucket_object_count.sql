-- storage.bucket_object_count(id, up_to, lock_bucket) → bigint
-- Counts the objects of a bucket, stopping at up_to, whatever the caller's RLS allows it to
-- see: delete and empty must know whether a bucket holds objects the caller cannot see, as the
-- reference checks with its service role. Raises ST001 when the bucket does not exist; with
-- lock_bucket it locks the bucket row (FOR UPDATE) so no object lands in it before the caller's
-- transaction ends. SECURITY DEFINER (owner bypasses RLS); discloses only existence and a count.
create or replace function storage.bucket_object_count(id text, up_to bigint, lock_bucket boolean default false)
  returns bigint
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
#variable_conflict use_column
declare
  n bigint;
begin
  if lock_bucket then
    perform from storage.buckets b where b.id = bucket_object_count.id for update;
  else
    perform from storage.buckets b where b.id = bucket_object_count.id;
  end if;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
  select count(*) into n
  from (select from storage.objects o where o.bucket_id = bucket_object_count.id limit up_to) s;
  return n;
end
$$;
revoke all on function storage.bucket_object_count(text, bigint, boolean) from public;
grant execute on function storage.bucket_object_count(text, bigint, boolean) to anon, authenticated, service_role;
