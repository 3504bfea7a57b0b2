-- Validation shared by the API functions. Each raises a stable SQLSTATE with the message the
-- REST API shows, so SQL callers and HTTP clients get the same refusal.

-- storage_internal.bucket_name_check refuses names outside spec §6.1: 1–100 characters from
-- A–Z a–z 0–9 _ ! - . * ' ( ) space & $ = @ ; : + , ?, no leading or trailing space, and not
-- ending in the reserved suffix '--table-s3'. ST006 'Bucket name invalid'.
create or replace function storage_internal.bucket_name_check(name text) returns void
  language plpgsql immutable
  as $$
begin
  if name is null
     or name !~ '^[A-Za-z0-9_!.*''() &$=@;:+,?-]{1,100}$'
     or name <> btrim(name)
     or right(name, 10) = '--table-s3' then
    raise exception using errcode = 'ST006', message = 'Bucket name invalid';
  end if;
end
$$;

-- storage_internal.bucket_id_check refuses bucket ids object routes could never address: the character
-- and length rules of bucket_name_check without the create-only ones. Writes and deletes check
-- it before touching any row, as the reference does (reads just find no bucket). ST006.
create or replace function storage_internal.bucket_id_check(id text) returns void
  language plpgsql immutable
  as $$
begin
  if id is null or id !~ '^[A-Za-z0-9_!.*''() &$=@;:+,?-]{1,100}$' then
    raise exception using errcode = 'ST006', message = 'Bucket name invalid';
  end if;
end
$$;

-- storage_internal.size_parse turns a size into bytes: digits are bytes as given; '<n>[.<d>](GB|MB|KB|B)'
-- (case-insensitive, decimal multipliers) is first rounded to 3 significant digits, as the
-- reference does ('1024KB' → 1020000). NULL stays NULL. ST010 on anything else.
create or replace function storage_internal.size_parse(size text) returns bigint
  language plpgsql immutable
  as $$
declare
  m text[];
  v numeric;
begin
  if size is null then
    return null;
  end if;
  if size ~ '^[0-9]+$' then
    return size::bigint;
  end if;
  m := regexp_match(size, '^([0-9]+(?:\.[0-9]+)?)(GB|MB|KB|B)$', 'i');
  if m is null then
    raise exception using errcode = 'ST010',
      message = 'Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B';
  end if;
  v := m[1]::numeric;
  if v > 0 then
    v := round(v, 2 - floor(log(v))::int);
  end if;
  return round(v * case upper(m[2]) when 'GB' then 1e9 when 'MB' then 1e6 when 'KB' then 1e3 else 1 end)::bigint;
end
$$;

-- storage_internal.bucket_size_limit_check refuses a bucket limit above the server's global upload
-- limit, which the proxy puts in the request setting storage.upload_file_size_limit (unset for
-- plain SQL callers: then there is no global limit to exceed). ST008.
create or replace function storage_internal.bucket_size_limit_check(file_size_limit bigint) returns void
  language plpgsql stable
  as $$
declare
  global_limit bigint := nullif(current_setting('storage.upload_file_size_limit', true), '')::bigint;
begin
  if file_size_limit < 0 then
    raise exception using errcode = 'ST010',
      message = 'Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B';
  end if;
  if file_size_limit > global_limit then
    raise exception using errcode = 'ST008', message = 'The object exceeded the maximum allowed size';
  end if;
end
$$;

-- storage_internal.mime_types_check drops empty entries and refuses any entry that is longer than 1000
-- characters or neither 'type/subtype[;charset=x]' nor ends with '*' (so 'image/*' passes, and
-- so does 'foo*', as in the reference). ST009 'mime type <x> is not supported'.
create or replace function storage_internal.mime_types_check(types text[]) returns text[]
  language plpgsql immutable
  as $$
declare
  t text;
  kept text[] := '{}';
begin
  if types is null then
    return null;
  end if;
  foreach t in array types loop
    continue when t is null or t = '';
    if length(t) > 1000
       or t !~ '(^[a-zA-Z0-9+.-]+/[a-zA-Z0-9+.-]+(;\s*charset=[a-zA-Z0-9-]+)?$)|(\*$)' then
      raise exception using errcode = 'ST009', message = format('mime type %s is not supported', t);
    end if;
    kept := kept || t;
  end loop;
  return kept;
end
$$;

-- storage_internal.uuid_or_null turns a JWT sub into the deprecated uuid owner column: the sub when it
-- is UUID-shaped, else NULL (owner_id keeps the sub verbatim).
create or replace function storage_internal.uuid_or_null(sub text) returns uuid
  language sql immutable parallel safe
  as $$
    select case when sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then sub::uuid end
  $$;

-- Pure checks: no table access, nothing to disclose. The API functions run as their caller, so
-- the request roles execute these too.
revoke all on function storage_internal.bucket_name_check(text), storage_internal.bucket_id_check(text),
  storage_internal.size_parse(text), storage_internal.bucket_size_limit_check(bigint),
  storage_internal.mime_types_check(text[]), storage_internal.uuid_or_null(text) from public;
grant execute on function storage_internal.bucket_name_check(text), storage_internal.bucket_id_check(text),
  storage_internal.size_parse(text), storage_internal.bucket_size_limit_check(bigint),
  storage_internal.mime_types_check(text[]), storage_internal.uuid_or_null(text)
  to anon, authenticated, service_role;
comment on function storage_internal.bucket_name_check(text) is
  'Internal check: raises ST006 ''Bucket name invalid'' for a name outside the bucket name rules.';
comment on function storage_internal.bucket_id_check(text) is
  'Internal check: raises ST006 for a bucket id object routes could never address.';
comment on function storage_internal.size_parse(text) is
  'Internal: bytes from digits or a size such as ''20MB'' (3 significant digits, decimal units); ST010 otherwise.';
comment on function storage_internal.bucket_size_limit_check(bigint) is
  'Internal check: raises ST008 when a bucket limit exceeds the server''s global upload limit, ST010 when negative.';
comment on function storage_internal.mime_types_check(text[]) is
  'Internal check: drops empty entries of allowed_mime_types, raises ST009 for an invalid one.';
comment on function storage_internal.uuid_or_null(text) is
  'Internal: the JWT sub as a uuid when it is UUID-shaped, else NULL (the deprecated owner column).';
