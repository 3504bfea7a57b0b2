-- 020 small requests: storage.signing_key keeps what a signature needs of the key, computed when
-- the key is stored (generated columns): the HMAC-SHA-256 inner and outer pads
-- (storage_internal.hmac_pad) and the tokens' base64url header (storage_internal.url_token_header),
-- so storage_internal.url_token signs with two sha256 calls instead of padding the key on every
-- call. Tokens are byte-identical. Reversible. Locks: ACCESS EXCLUSIVE on storage.signing_key
-- while its one row is rewritten with the new columns.

{{ install_snapshot "020" }}
alter table storage.signing_key
  add column ipad bytea generated always as (storage_internal.hmac_pad(secret, 54)) stored,
  add column opad bytea generated always as (storage_internal.hmac_pad(secret, 92)) stored,
  add column token_header text generated always as (storage_internal.url_token_header(kid)) stored;
comment on column storage.signing_key.ipad is 'The key''s HMAC-SHA-256 inner pad (generated).';
comment on column storage.signing_key.opad is 'The key''s HMAC-SHA-256 outer pad (generated).';
comment on column storage.signing_key.token_header is 'The base64url JOSE header of the tokens signed with the key (generated).';

---- create above / drop below ----

{{ install_snapshot "019" }}
alter table storage.signing_key drop column ipad, drop column opad, drop column token_header;
drop function storage_internal.hmac_pad(bytea, integer), storage_internal.url_token_header(text);
