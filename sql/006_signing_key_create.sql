-- 006 signing key: storage.signing_key holds the secret signed URLs are signed with (the
-- server's AUTH_JWT_SECRET, written by `storage serve` at start through
-- storage.signing_secret_set). Only the owner of the storage schema can read or write it: no
-- privilege for anon, authenticated or service_role, RLS on without policies. The URL-signing
-- functions, owned by the same role, read it as SECURITY DEFINER. Reversible. No table locks.

create table storage.signing_key (
  id         int primary key default 1 check (id = 1),
  secret     text not null,
  updated_at timestamptz not null default now()
);
comment on table storage.signing_key is
  'The secret of signed URLs (= AUTH_JWT_SECRET). Readable by the schema owner only.';
alter table storage.signing_key enable row level security;
revoke all on storage.signing_key from public, anon, authenticated, service_role;

---- create above / drop below ----

drop table storage.signing_key;
