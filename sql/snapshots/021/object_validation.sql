-- Object-level validation and lookups shared by the object API functions.

-- storage_internal.object_name_check refuses keys outside spec §6.2: non-empty, only
-- A–Z a–z 0–9 _ / ! - . * ' ( ) space & $ = @ ; : + , ? — no normalisation (a///b stays) —
-- and at most 1024 bytes, S3's limit for a key (the reference has no limit of its own but
-- its S3 backend's; beyond ~2.7 kB the unique index would refuse the row with an internal
-- error). ST007 'Invalid key: <name>'.
create or replace function storage_internal.object_name_check(name text) returns void
  language plpgsql immutable
  as $$
begin
  if name is null or octet_length(name) > 1024 or name !~ '^[A-Za-z0-9_/!.*''() &$=@;:+,?-]+$' then
    raise exception using errcode = 'ST007', message = format('Invalid key: %s', coalesce(name, ''));
  end if;
end
$$;

-- storage_internal.mime_type_allowed applies a bucket's allowed_mime_types to a MIME type exactly as
-- the reference does: split on the first '/', the whole rest (parameters included) is the
-- subtype; an entry matches with an equal type and either subtype '*' or an identical rest.
-- So 'text/plain;charset=UTF-8' is refused by ['text/plain'], and '*' or '*/*' match nothing.
-- NULL or empty allowed list: everything passes. Written as one expression without a
-- subquery, so PostgreSQL inlines it into the calling statement instead of planning a SQL
-- function on every call: an entry T/R matches with R = '*' exactly when it equals the type
-- of the MIME type followed by '/*', and with an identical rest exactly when it equals the MIME
-- type. NULL entries match nothing.
create or replace function storage_internal.mime_type_allowed(mimetype text, allowed text[]) returns boolean
  language sql immutable
  as $$
    select allowed is null or cardinality(allowed) = 0
        or coalesce(position('/' in mimetype) > 0
                    and (mimetype = any (allowed) or split_part(mimetype, '/', 1) || '/*' = any (allowed)), false)
  $$;

-- storage_internal.bucket_lookup(id) → the bucket's access and limit settings, whatever the caller's
-- RLS: uploads and reads decide on the bucket as the reference's service role does (so a
-- missing bucket is always "Bucket not found"). SECURITY DEFINER; discloses only existence,
-- public and limits. ST001 when missing.
create or replace function storage_internal.bucket_lookup(id text,
  out public boolean, out file_size_limit bigint, out allowed_mime_types text[])
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
#variable_conflict use_column
begin
  select coalesce(b.public, false), b.file_size_limit, b.allowed_mime_types
    into bucket_lookup.public, bucket_lookup.file_size_limit, bucket_lookup.allowed_mime_types
  from storage.buckets b where b.id = bucket_lookup.id;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
end
$$;
revoke all on function storage_internal.bucket_lookup(text) from public;
grant execute on function storage_internal.bucket_lookup(text) to anon, authenticated, service_role;

-- storage_internal.object_public_lookup(bucket_id, name) → the object row of a PUBLIC bucket whatever
-- the caller's RLS: reads from public buckets skip RLS, as in the reference. It returns
-- nothing for private buckets, so granting it discloses only what the public routes serve to
-- anyone. SECURITY DEFINER.
create or replace function storage_internal.object_public_lookup(bucket_id text, name text) returns setof storage.objects
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  return query
    select o.* from storage.objects o
    where o.bucket_id = object_public_lookup.bucket_id and o.name collate "C" = object_public_lookup.name
      and exists (select from storage.buckets b where b.id = object_public_lookup.bucket_id and b.public);
end
$$;
revoke all on function storage_internal.object_public_lookup(text, text) from public;
grant execute on function storage_internal.object_public_lookup(text, text) to anon, authenticated, service_role;

revoke all on function storage_internal.object_name_check(text), storage_internal.mime_type_allowed(text, text[]) from public;
grant execute on function storage_internal.object_name_check(text), storage_internal.mime_type_allowed(text, text[])
  to anon, authenticated, service_role;
comment on function storage_internal.object_name_check(text) is
  'Internal check: raises ST007 ''Invalid key: <name>'' for a key outside the key rules or longer than 1024 bytes.';
comment on function storage_internal.mime_type_allowed(text, text[]) is
  'Internal: whether a bucket''s allowed_mime_types admit a MIME type (the reference''s matching rules).';
comment on function storage_internal.bucket_lookup(text) is
  'Internal, SECURITY DEFINER: a bucket''s public flag and limits whatever the caller''s policies (as the reference reads buckets); ST001 when missing. Discloses what uploads and public reads disclose.';
comment on function storage_internal.object_public_lookup(text, text) is
  'Internal, SECURITY DEFINER: an object row of a public bucket whatever the caller''s policies (what the public routes serve to anyone); nothing for private buckets.';
