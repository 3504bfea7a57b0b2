-- storage.object_info(bucket_id, name, public_only) → storage.objects
-- The object row behind a download, HEAD or info request. The bucket is looked up whatever
-- the caller's RLS (ST001 when missing). public_only (the /public/ routes, and anonymous
-- callers of the optional-auth routes) additionally requires a public bucket (else ST001, so
-- a private bucket reads as missing). In a public bucket the row is read without RLS; in a
-- private one as the calling role (RLS SELECT). Missing or hidden → ST002, never 403.
-- Key syntax is checked first (ST007).
create or replace function storage.object_info(bucket_id text, name text, public_only boolean default false)
  returns storage.objects
  language plpgsql stable
  as $$
#variable_conflict use_column
declare
  _public boolean;
  o storage.objects;
begin
  select b.public into _public from storage_internal.bucket_lookup(object_info.bucket_id) b;
  if object_info.public_only and not _public then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
  perform storage_internal.object_name_check(object_info.name);
  if _public then
    select * into o from storage_internal.object_public_lookup(object_info.bucket_id, object_info.name);
  else
    select * into o from storage.objects x where x.bucket_id = object_info.bucket_id and x.name collate "C" = object_info.name;
  end if;
  if o.id is null then
    raise exception using errcode = 'ST002', message = 'Object not found';
  end if;
  return o;
end
$$;
comment on function storage.object_info(text, text, boolean) is
  'The object row behind a download or info request: in a public bucket whatever the caller''s policies, in a private one as the caller (RLS: SELECT policy); public_only requires a public bucket. Raises ST001 bucket missing (or private with public_only), ST002 missing or hidden, ST007 bad key.';
