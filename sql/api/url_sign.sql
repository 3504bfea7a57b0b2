-- Signed URLs, minted in SQL so that SQL callers (triggers, jobs, other services) and the REST
-- API produce the same tokens: compact HS256 JWTs signed with the secret in
-- storage.signing_key, as spec §4 describes.

-- storage_internal.hmac_pad(key, pad) → bytea: the HMAC-SHA-256 key block (RFC 2104: the key,
-- hashed when longer than 64 bytes, zero-padded to 64) XORed with the byte pad (0x36 for the
-- inner hash, 0x5c for the outer). bytea has no XOR, so the block is XORed eight bytes at a time
-- as bigints. It depends on the key alone: storage.signing_key keeps both pads of the signing
-- key (generated columns), so a signature costs two sha256 calls and no padding.
create or replace function storage_internal.hmac_pad(key bytea, pad integer) returns bytea
  language plpgsql immutable parallel safe
  as $$
declare
  k bytea := key;
  word bigint := pad::bigint * 72340172838076673;   -- the byte repeated: 0x0101010101010101 × pad
  out bytea;
begin
  if length(k) > 64 then
    k := sha256(k);
  end if;
  k := k || decode(repeat('00', 64 - length(k)), 'hex');
  select string_agg(int8send(('x' || encode(substr(k, i * 8 + 1, 8), 'hex'))::bit(64)::bigint # word), '' order by i)
    into out
    from generate_series(0, 7) i;
  return out;
end
$$;

-- storage_internal.hmac_sha256(key, message) → bytea: HMAC-SHA-256 (RFC 2104) on the built-in
-- sha256, so no extension is needed.
create or replace function storage_internal.hmac_sha256(key bytea, message bytea) returns bytea
  language sql immutable parallel safe
  as $$
    select sha256(storage_internal.hmac_pad(key, 92) || sha256(storage_internal.hmac_pad(key, 54) || message))
  $$;

-- storage_internal.base64url(bytes) → text: unpadded base64url, the JWT encoding.
create or replace function storage_internal.base64url(data bytea) returns text
  language sql immutable parallel safe
  as $$
    select translate(replace(rtrim(encode(data, 'base64'), '='), E'\n', ''), '+/', '-_')
  $$;

-- storage_internal.url_token_header(kid) → text: the base64url JOSE header of the signed-URL
-- tokens, with the key id when there is one. storage.signing_key keeps it (a generated column).
create or replace function storage_internal.url_token_header(kid text) returns text
  language sql immutable parallel safe
  as $$
    select storage_internal.base64url(convert_to(
      case when kid is null then '{"alg":"HS256","typ":"JWT"}'
           else jsonb_build_object('alg', 'HS256', 'kid', kid, 'typ', 'JWT')::text end, 'UTF8'))
  $$;

-- storage_internal.url_path(bucket_id, name) → text: '<bucket>/<name>' with every character
-- JavaScript's encodeURIComponent escapes percent-encoded in each segment ('/' separates
-- segments), so a URL built from it names exactly that object whatever the key holds ('a?b',
-- spaces, '&'…). Keys and bucket ids are ASCII without '%' (storage_internal.object_name_check),
-- so decoding it once gives the key back, and a client that percent-encodes the URL once more
-- (storage-js applies encodeURI to it) sends a path that decodes to the key in two steps,
-- which the server's signed routes accept (the token, not the path, names the object).
create or replace function storage_internal.url_path(bucket_id text, name text) returns text
  language plpgsql immutable parallel safe
  -- PL/pgSQL, whose plans live for the session (a SQL function called from PL/pgSQL is
  -- planned again in every transaction: 60 µs of a signature), and translate and strpos rather
  -- than regular expressions, which malloc their state on every match.
  as $$
declare
  safe constant text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.!~*''()/-';
  p text := url_path.bucket_id || '/' || url_path.name;
  out text := '';
  c text;
begin
  if translate(p, safe, '') = '' then
    return p;
  end if;
  foreach c in array string_to_array(p, null) loop
    if strpos(safe, c) > 0 then
      out := out || c;
    else
      out := out || '%' || upper(encode(convert_to(c, 'UTF8'), 'hex'));
    end if;
  end loop;
  return out;
end
$$;

-- storage_internal.url_token(claims) → text: the claims as an HS256 JWT signed with the
-- signing key (with its kid in the header when it has one). SECURITY DEFINER (it reads the
-- secret), so it must not sign for just anyone: it works only for storage.url_sign,
-- url_sign_many and url_sign_upload, which first apply the caller's policies
-- (storage_internal.called_by); a direct call, or one from any other function, is refused
-- (42501).
create or replace function storage_internal.url_token(claims jsonb) returns text
  language plpgsql stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _header text;
  _ipad bytea;
  _opad bytea;
  signing_input text;
begin
  if not storage_internal.called_by('storage.url_sign', 'storage.url_sign_many', 'storage.url_sign_upload') then
    raise exception using errcode = '42501', message = 'storage_internal.url_token may only be called by the storage.url_sign functions';
  end if;
  -- The key's header and HMAC pads, computed when it was stored.
  select x.token_header, x.ipad, x.opad into _header, _ipad, _opad from storage.signing_key x where x.id = 1;
  if not found then
    raise exception using errcode = 'ST010',
      message = 'No signing key: start the storage server once (it stores AUTH_JWT_SECRET) or call storage.signing_secret_set';
  end if;
  signing_input := _header || '.' || storage_internal.base64url(convert_to(claims::text, 'UTF8'));
  return signing_input || '.' || storage_internal.base64url(sha256(_opad || sha256(_ipad || convert_to(signing_input, 'UTF8'))));
end
$$;
revoke all on function storage_internal.url_token(jsonb) from public;
grant execute on function storage_internal.url_token(jsonb) to anon, authenticated, service_role;

-- storage.signing_secret_set(secret, kid) → void: stores the key signed URLs are signed with
-- and, when it has one, its key id (JWT_JWKS's urlSigningKey). The server calls it at every
-- start, with the raw key bytes; a DBA rotating AUTH_JWT_SECRET passes the secret as text (its
-- UTF-8 bytes are the key, as the server uses it). Callable by the owner and the servers' role
-- storage_server only. SECURITY DEFINER: storage.signing_key is readable by its owner alone.
create or replace function storage.signing_secret_set(secret bytea, kid text default null) returns void
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    insert into storage.signing_key (id, secret, kid, updated_at) values (1, signing_secret_set.secret, signing_secret_set.kid, now())
    on conflict (id) do update set secret = excluded.secret, kid = excluded.kid, updated_at = excluded.updated_at
    where (storage.signing_key.secret, storage.signing_key.kid) is distinct from (excluded.secret, excluded.kid)
  $$;
revoke all on function storage.signing_secret_set(bytea, text) from public;
grant execute on function storage.signing_secret_set(bytea, text) to storage_server;

create or replace function storage.signing_secret_set(secret text, kid text default null) returns void
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select storage.signing_secret_set(convert_to(signing_secret_set.secret, 'UTF8'), signing_secret_set.kid)
  $$;
revoke all on function storage.signing_secret_set(text, text) from public;
grant execute on function storage.signing_secret_set(text, text) to storage_server;

-- storage_internal.url_expiry(expires_in) → bigint: the exp claim, now + expires_in seconds.
-- expires_in must be at least 1 and keep exp within JavaScript's safe millisecond range. ST012.
create or replace function storage_internal.url_expiry(expires_in bigint) returns bigint
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

-- Pure functions: the request roles may use them too.
revoke all on function storage_internal.hmac_pad(bytea, integer), storage_internal.hmac_sha256(bytea, bytea),
  storage_internal.base64url(bytea), storage_internal.url_token_header(text),
  storage_internal.url_path(text, text), storage_internal.url_expiry(bigint) from public;
grant execute on function storage_internal.hmac_pad(bytea, integer), storage_internal.hmac_sha256(bytea, bytea),
  storage_internal.base64url(bytea), storage_internal.url_token_header(text),
  storage_internal.url_path(text, text), storage_internal.url_expiry(bigint)
  to anon, authenticated, service_role;

-- storage.url_sign(bucket_id, name, expires_in, transformations, format) → text
-- A download URL for one object, relative as the REST API returns it:
-- '/object/sign/<bucket>/<name>?token=<jwt>' (bucket and name percent-encoded, see
-- storage_internal.url_path) with claims url ('<bucket>/<name>' verbatim), scope 'download',
-- iat, exp. With a non-empty transformations string (the REST API's transform, in the form
-- the token carries it, e.g. 'height:100,width:100,resize:contain') the URL is
-- '/render/image/sign/<bucket>/<name>?token=<jwt>' and the token carries it, and format
-- (origin, webp, avif) when given: the image is rendered as the token says, whatever the URL's
-- query asks. The object must be visible to the caller (RLS SELECT; missing or hidden → ST002).
-- An invalid bucket id is ST006; a format other than those three, ST012.
create or replace function storage.url_sign(bucket_id text, name text, expires_in bigint,
  transformations text default null, format text default null) returns text
  language plpgsql
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _exp bigint := storage_internal.url_expiry(url_sign.expires_in);
  _render text := nullif(url_sign.transformations, '');
begin
  perform storage_internal.bucket_id_check(url_sign.bucket_id);
  perform storage_internal.object_name_check(url_sign.name);
  if url_sign.format is not null and url_sign.format not in ('origin', 'webp', 'avif') then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter format';
  end if;
  perform from storage.objects o where o.bucket_id = url_sign.bucket_id and o.name collate "C" = url_sign.name;
  if not found then
    raise exception using errcode = 'ST002', message = 'Object not found';
  end if;
  return case when _render is null then '/object/sign/' else '/render/image/sign/' end
    || storage_internal.url_path(url_sign.bucket_id, url_sign.name) || '?token=' || storage_internal.url_token(jsonb_strip_nulls(jsonb_build_object(
    'url', url_sign.bucket_id || '/' || url_sign.name, 'scope', 'download',
    'transformations', _render, 'format', url_sign.format,
    'iat', floor(extract(epoch from now()))::bigint, 'exp', _exp)));
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
  _exp bigint := storage_internal.url_expiry(url_sign_many.expires_in);
  _iat bigint := floor(extract(epoch from now()))::bigint;
  n text;
begin
  perform storage_internal.bucket_id_check(url_sign_many.bucket_id);
  foreach n in array url_sign_many.names loop
    path := n;
    if exists (select from storage.objects o where o.bucket_id = url_sign_many.bucket_id and o.name collate "C" = n) then
      signed_url := '/object/sign/' || storage_internal.url_path(url_sign_many.bucket_id, n) || '?token=' || storage_internal.url_token(jsonb_build_object(
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
-- An upload URL '/object/upload/sign/<bucket>/<name>?token=<jwt>' (percent-encoded as in
-- storage.url_sign) after the same checks an upload makes before bytes move
-- (storage_internal.object_write_check: bucket, key, RLS dry-run, duplicate unless upsert).
-- Size and MIME limits apply when the upload arrives. Claims: url, owner (the caller's sub when
-- there is one), upsert, scope 'upload', iat, exp, and signer: the identity the upload will be
-- written as — {"role": the caller's role, "claims": the caller's JWT claims} — so that the
-- upload, when it arrives, is authorized again under the signer's policies against the row as
-- it is then. A caller RLS does not apply to (the owner, a superuser, a BYPASSRLS role) signs
-- as service_role, which also bypasses RLS.
create or replace function storage.url_sign_upload(bucket_id text, name text, upsert boolean default false,
  expires_in bigint default 7200)
  returns table (url text, token text)
  language plpgsql
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _sub text := nullif(current_setting('request.jwt.claim.sub', true), '');
  -- The signer's claims, without the timestamps of the signer's own token: the URL's exp is
  -- what bounds the upload.
  _claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb - 'exp' - 'iat' - 'nbf';
  _exp bigint := storage_internal.url_expiry(url_sign_upload.expires_in);
begin
  perform storage_internal.object_write_check(url_sign_upload.bucket_id, url_sign_upload.name,
    coalesce(url_sign_upload.upsert, false), null, null, null);
  token := storage_internal.url_token(jsonb_strip_nulls(jsonb_build_object(
    'url', url_sign_upload.bucket_id || '/' || url_sign_upload.name, 'owner', _sub,
    'upsert', coalesce(url_sign_upload.upsert, false), 'scope', 'upload',
    'iat', floor(extract(epoch from now()))::bigint, 'exp', _exp,
    'signer', jsonb_strip_nulls(jsonb_build_object(
      'role', case when row_security_active('storage.objects') then current_user::text else 'service_role' end,
      'claims', _claims)))));
  url := '/object/upload/sign/' || storage_internal.url_path(url_sign_upload.bucket_id, url_sign_upload.name) || '?token=' || token;
  return next;
end
$$;

comment on function storage_internal.hmac_pad(bytea, integer) is
  'Internal: the HMAC-SHA-256 key block XORed with a pad byte (54 inner, 92 outer); storage.signing_key keeps the signing key''s.';
comment on function storage_internal.hmac_sha256(bytea, bytea) is 'Internal: HMAC-SHA-256 of message under key.';
comment on function storage_internal.url_token_header(text) is
  'Internal: the base64url JOSE header of signed-URL tokens (HS256, with the key id when given); storage.signing_key keeps the signing key''s.';
comment on function storage_internal.base64url(bytea) is 'Internal: unpadded base64url, the JWT encoding.';
comment on function storage_internal.url_path(text, text) is
  'Internal: ''<bucket>/<name>'' with each segment percent-encoded as encodeURIComponent does, for signed URLs.';
comment on function storage_internal.url_token(jsonb) is
  'Internal, SECURITY DEFINER: signs claims as an HS256 JWT with the signing key, for the storage.url_sign functions only (42501 otherwise).';
comment on function storage_internal.url_expiry(bigint) is
  'Internal: the exp claim for expires_in seconds from now; ST012 when out of range.';
comment on function storage.signing_secret_set(bytea, text) is
  'Stores the key (and key id) signed URLs are signed with; the server calls it at start. Owner and storage_server only.';
comment on function storage.signing_secret_set(text, text) is
  'Stores a text secret (its UTF-8 bytes, as AUTH_JWT_SECRET) as the key signed URLs are signed with. Owner and storage_server only.';
comment on function storage.url_sign(text, text, bigint, text, text) is
  'A signed download URL (relative, /object/sign/…?token=; /render/image/sign/…?token= with transformations) for an object the caller may see (RLS: SELECT policy). Raises ST006, ST007, ST002 missing or hidden, ST012 bad expires_in or format.';
comment on function storage.url_sign_many(text, text[], bigint) is
  'Signed download URLs for many names, in input order; names the caller may not see get an error text instead. Raises ST006, ST012.';
comment on function storage.url_sign_upload(text, text, boolean, bigint) is
  'A signed upload URL (relative, /object/upload/sign/…?token=) after the upload''s checks as the caller (RLS dry-run of INSERT, or upsert); the upload is authorized again as the signer when it arrives. Raises ST006, ST001, ST007, ST004, ST012, 42501.';
