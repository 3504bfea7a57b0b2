-- storage.bucket_get(id) → storage.buckets
-- The bucket as the calling role sees it (RLS: needs a SELECT policy unless the role bypasses
-- RLS). Errors: ST001 when it does not exist or is hidden from the caller (never 403).
create or replace function storage.bucket_get(id text) returns storage.buckets
  language plpgsql stable
  as $$
#variable_conflict use_column
declare
  b storage.buckets;
begin
  select * into b from storage.buckets where id = bucket_get.id;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
  return b;
end
$$;
comment on function storage.bucket_get(text) is
  'The bucket as the caller sees it (RLS: SELECT policy on storage.buckets). Raises ST001 missing or hidden.';
