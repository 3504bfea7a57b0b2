-- Signed URLs, minted in SQL so that SQL callers (triggers, jobs, other services) and the REST
-- API produce the same tokens: compact HS256 JWTs signed with the secret in
-- storage.signing_key, as spec §4 describes.

-- storage.hmac_sha256(key, message) → bytea: HMAC-SHA-256 (RFC 2104) on the built-in sha256,
-- so no extension is needed. bytea has no XOR, so the padded key is XORed with the ipad and
-- opad bytes (0x36, 0x5c) eight bytes at a time as bigints: one statement, where a byte loop
-- costs 128 PL/pgSQL assignments per signature.
create or replace function storage.hmac_sha256(key bytea, message bytea) returns bytea
  language plpgsql immutable parallel safe
  as $$
declare
  k bytea := key;
  ipad bytea;
  opad bytea;
begin
  if length(k) > 64 then
    k := sha256(k);
  end if;
  k := k || decode(repeat('00', 64 - length(k)), 'hex');
  select string_agg(int8send(w # 3906369333256140342), '' order by i),   -- 0x3636363636363636
         string_agg(int8send(w # 6655295901103053916), '' order by i)    -- 0x5c5c5c5c5c5c5c5c
    into ipad, opad
    from (select i, ('x' || encode(substr(k, i * 8 + 1, 8), 'hex'))::bit(64)::bigint as w
          from generate_series(0, 7) i) words;
  return sha256(opad || sha256(ipad || message));
end
$$;

-- storage.base64url(bytes) → text: unpadded base64url, the JWT encoding.
create or replace function storage.base64url(data bytea) returns text
  language sql immutable parallel safe
  as $$
    select translate(replace(rtrim(encode(data, 'base64'), '='), E'\n', ''), '+/', '-_')
  $$;

-- storage.url_token(claims) → text: the claims as an HS256 JWT signed with the signing key.
-- SECURITY DEFINER (it reads the secret), so it must not sign for just anyone: it works only
-- when called directly by storage.url_sign, url_sign_many or url_sign_upload, which first
-- apply the caller's policies. The caller is read from the PL/pgSQL call stack; a direct call,
-- or one from any other function, is refused (42501).
create or replace function storage.url_token(claims jsonb) returns text
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  stack text;
  caller text;
  secret text;
  signing_input text;
begin
  get diagnostics stack = pg_context;
  caller := split_part(stack, E'\n', 2);
  if caller !~ '^PL/pgSQL function storage\.url_sign(_many|_upload)?\(' then
    raise exception using errcode = '42501', message = 'storage.url_token may only be called by the storage.url_sign functions';
  end if;
  select k.secret into secret from storage.signing_key k where k.id = 1;
  if secret is null then
    raise exception using errcode = 'ST010',
      message = 'No signing key: start the storage server once (it stores AUTH_JWT_SECRET) or call storage.signing_secret_set';
  end if;
  signing_input := 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.' || storage.base64url(convert_to(claims::text, 'UTF8'));
  return signing_input || '.' || storage.base64url(storage.hmac_sha256(convert_to(secret, 'UTF8'), convert_to(signing_input, 'UTF8')));
end
$$;
revoke all on function storage.url_token(jsonb) from public;
grant execute on function storage.url_token(jsonb) to anon, authenticated, service_role;

-- storage.signing_secret_set(secret) → void: stores the signing secret. The server calls it at
-- start with AUTH_JWT_SECRET; only the schema owner can run it (no grants).
create or replace function storage.signing_secret_set(secret text) returns void
  language sql
  as $$
    insert into storage.signing_key (id, secret, updated_at) values (1, signing_secret_set.secret, now())
    on conflict (id) do update set secret = excluded.secret, updated_at = excluded.updated_at
    where storage.signing_key.secret is distinct from excluded.secret
  $$;
revoke all on function storage.signing_secret_set(text) from public;

-- storage.url_expiry(expires_in) → bigint: the exp claim, now + expires_in seconds. expires_in
-- must be at least 1 and keep exp within JavaScript's safe millisecond range. ST012.
create or replace function storage.url_expiry(expires_in bigint) returns bigint
  language plpgsql stable
  as $$
declare
  now_s bigint := floor(extract(epoch from now()));
begin
  if expires_in is null or expires_in < 1 or expires_in > 9007199254740 - now_s then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter expiresIn';
  end if;
  return now_s + expires_in;
end
$$;

-- storage.url_sign(bucket_id, name, expires_in) → text
-- A download URL for one object, relative as the REST API returns it:
-- '/object/sign/<bucket>/<name>?token=<jwt>' with claims url, scope 'download', iat, exp.
-- The object must be visible to the caller (RLS SELECT; missing or hidden → ST002). An invalid
-- bucket id is ST006.
create or replace function storage.url_sign(bucket_id text, name text, expires_in bigint) returns text
  language plpgsql
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _exp bigint := storage.url_expiry(url_sign.expires_in);
begin
  perform storage.bucket_id_check(url_sign.bucket_id);
  perform storage.object_name_check(url_sign.name);
  perform from storage.objects o where o.bucket_id = url_sign.bucket_id and o.name collate "C" = url_sign.name;
  if not found then
    raise exception using errcode = 'ST002', message = 'Object not found';
  end if;
  return '/object/sign/' || url_sign.bucket_id || '/' || url_sign.name || '?token=' || storage.url_token(jsonb_build_object(
    'url', url_sign.bucket_id || '/' || url_sign.name, 'scope', 'download',
    'iat', floor(extract(epoch from now()))::bigint, 'exp', _exp));
end
$$;

-- storage.url_sign_many(bucket_id, names, expires_in) → table(path, signed_url, error)
-- One row per name, in input order: a download URL for each object the caller can see, else
-- signed_url NULL and the reference's error text. A missing bucket errs every row.
create or replace function storage.url_sign_many(bucket_id text, names text[], expires_in bigint)
  returns table (path text, signed_url text, error text)
  language plpgsql
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _exp bigint := storage.url_expiry(url_sign_many.expires_in);
  _iat bigint := floor(extract(epoch from now()))::bigint;
  n text;
begin
  perform storage.bucket_id_check(url_sign_many.bucket_id);
  foreach n in array url_sign_many.names loop
    path := n;
    if exists (select from storage.objects o where o.bucket_id = url_sign_many.bucket_id and o.name collate "C" = n) then
      signed_url := '/object/sign/' || url_sign_many.bucket_id || '/' || n || '?token=' || storage.url_token(jsonb_build_object(
        'url', url_sign_many.bucket_id || '/' || n, 'scope', 'download', 'iat', _iat, 'exp', _exp));
      error := null;
    else
      signed_url := null;
      error := 'Either the object does not exist or you do not have access to it';
    end if;
    return next;
  end loop;
end
$$;

-- storage.url_sign_upload(bucket_id, name, upsert, expires_in) → table(url, token)
-- An upload URL '/object/upload/sign/<bucket>/<name>?token=<jwt>' (claims url, owner = the
-- caller's sub when there is one, upsert, scope 'upload', iat, exp) after the same checks an
-- upload makes before bytes move (storage.object_write_check: bucket, key, RLS dry-run,
-- duplicate unless upsert). Size and MIME limits apply when the upload arrives.
create or replace function storage.url_sign_upload(bucket_id text, name text, upsert boolean default false,
  expires_in bigint default 7200)
  returns table (url text, token text)
  language plpgsql
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _sub text := nullif(current_setting('request.jwt.claim.sub', true), '');
  _exp bigint := storage.url_expiry(url_sign_upload.expires_in);
begin
  perform storage.object_write_check(url_sign_upload.bucket_id, url_sign_upload.name,
    coalesce(url_sign_upload.upsert, false), null, null, null);
  token := storage.url_token(jsonb_strip_nulls(jsonb_build_object(
    'url', url_sign_upload.bucket_id || '/' || url_sign_upload.name, 'owner', _sub,
    'upsert', coalesce(url_sign_upload.upsert, false), 'scope', 'upload',
    'iat', floor(extract(epoch from now()))::bigint, 'exp', _exp)));
  url := '/object/upload/sign/' || url_sign_upload.bucket_id || '/' || url_sign_upload.name || '?token=' || token;
  return next;
end
$$;
