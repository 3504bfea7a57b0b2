-- 013 storage_internal: schema storage keeps what callers use (the API, signing_secret_set,
-- the policy helpers), every other function moves to schema storage_internal, and the SECURITY
-- DEFINER helpers answer only the API functions that apply the caller's policies first.
-- - Rows point only at bytes their writer may have: the objects_guard trigger (a version must
--   be an upload in flight for that key, or the bytes of a row the writer may read).
-- - Uploads commit as the uploader (storage_internal.object_upload_commit is granted to the
--   request roles); request roles, service_role included, lose every right on the bookkeeping
--   tables storage.blob_uploads and storage.blobs_freed.
-- - The servers' role storage_server (NOLOGIN, created when missing) may run the collector's
--   functions and storage.signing_secret_set; the collector elects its leader with a lease row
--   (storage_internal.collector_lease) instead of an advisory lock any role could hold.
-- - storage.object_delete_prefix names its bucket parameter bucket_id like every other
--   function (positional calls are unchanged; calls naming `bucket =>` must now say
--   `bucket_id =>`), and storage.signing_key holds the URL signing key as bytes, with its kid.
-- Reversible. Locks: SHARE ROW EXCLUSIVE on storage.objects briefly (trigger), ACCESS
-- EXCLUSIVE on storage.signing_key (a column, no rewrite).

do $$
begin
  if not exists (select from pg_roles where rolname = 'storage_server') then
    create role storage_server nologin noinherit;
  end if;
end
$$;

create schema storage_internal;
comment on schema storage_internal is
  'Internals of the storage API: checks, SECURITY DEFINER helpers, the server''s upload steps, the collector, trigger functions. Callers use schema storage.';
revoke all on schema storage_internal from public;
grant usage on schema storage_internal to anon, authenticated, service_role, storage_server;
grant usage on schema storage to storage_server;

-- Trigger functions move; their triggers follow (they refer to functions by oid).
alter function storage.objects_free_blobs() set schema storage_internal;
alter function storage.objects_free_replaced_blobs() set schema storage_internal;
alter function storage.objects_free_all_blobs() set schema storage_internal;
alter function storage.update_updated_at_column() set schema storage_internal;
alter function storage.enforce_bucket_name_length() set schema storage_internal;

-- The other functions that move are created afresh by the snapshot below; their old copies go.
drop function storage.bucket_name_check(text), storage.bucket_id_check(text), storage.size_parse(text),
  storage.bucket_size_limit_check(bigint), storage.mime_types_check(text[]), storage.uuid_or_null(text),
  storage.object_name_check(text), storage.mime_type_allowed(text, text[]), storage.bucket_lookup(text),
  storage.object_public_lookup(text, text), storage.bucket_object_count(text, bigint, boolean),
  storage.object_write_check(text, text, boolean, text, bigint, jsonb),
  storage.object_upload_prepare(text, text, boolean, text, bigint, jsonb),
  storage.object_upload_commit(text, text, text, boolean, text, bigint, text, text, text, jsonb, text),
  storage.object_upload_abort(text), storage.blob_upload_begin(text, text), storage.object_exists(text, text),
  storage.hmac_sha256(bytea, bytea), storage.base64url(bytea), storage.url_token(jsonb), storage.url_expiry(bigint),
  storage.prefix_successor(text), storage.object_dest_check(text, text, bigint, text),
  storage.object_share_lock(uuid), storage.bucket_empty_enqueue(text), storage.bucket_empty_work(integer),
  storage.blob_collect_next(interval, integer), storage.blob_collect_done(text[]),
  storage.blob_collect_failed(text, text), storage.blob_upload_expire(interval, text),
  storage.object_delete_prefix(text, text, bigint), storage.signing_secret_set(text);

-- The URL signing key may be any bytes (a JWT_JWKS oct key), and has a key id.
alter table storage.signing_key
  alter column secret type bytea using convert_to(secret, 'UTF8'),
  add column kid text;
comment on column storage.signing_key.secret is 'The HMAC key of signed URLs: AUTH_JWT_SECRET''s UTF-8 bytes, or JWT_JWKS''s urlSigningKey.';
comment on column storage.signing_key.kid is 'Key id of the URL signing key (JWT_JWKS urlSigningKey), put in signed-URL token headers; NULL for AUTH_JWT_SECRET.';

-- Bookkeeping is the server's: request roles reach it only through the API's SECURITY DEFINER
-- helpers. (service_role keeps reading bucket-empty progress.)
revoke all on storage.blob_uploads, storage.blobs_freed from service_role;

create table storage_internal.collector_lease (
  id         int primary key default 1 check (id = 1),
  holder     text not null,
  expires_at timestamptz not null
);
comment on table storage_internal.collector_lease is
  'The collector leader''s lease: the server holding it (until expires_at) collects blobs and works bucket-empty jobs.';

{{ install_snapshot "013" }}

create trigger objects_guard
  before insert or update on storage.objects
  for each row execute function storage_internal.objects_guard();

-- The collector's bucket-empty worker runs as storage_server (then as each job's role).
grant select, update on storage.bucket_empty_jobs to storage_server;
create policy bucket_empty_jobs_server on storage.bucket_empty_jobs
  for all to storage_server using (true) with check (true);

comment on function storage.foldername(text) is
  'Policy helper: the folders of a key (''a/b/c.png'' → {a,b}).';
comment on function storage.filename(text) is
  'Policy helper: the last segment of a key (''a/b/c.png'' → c.png).';
comment on function storage.extension(text) is
  'Policy helper: the text after the last dot of a key''s file name (''a/b/c.png'' → png).';
comment on function storage.operation() is
  'Policy helper: the operation id of the current request (''storage.object.upload''…), NULL outside one.';
comment on function storage.allow_only_operation(text) is
  'Policy helper: whether the current operation is the given one (a leading ''storage.'' is ignored).';
comment on function storage.allow_any_operation(text[]) is
  'Policy helper: whether the current operation is one of the given ones.';

---- create above / drop below ----

revoke usage on schema storage from storage_server;
drop policy bucket_empty_jobs_server on storage.bucket_empty_jobs;
revoke select, update on storage.bucket_empty_jobs from storage_server;
drop trigger objects_guard on storage.objects;
grant select, insert, delete on storage.blob_uploads, storage.blobs_freed to service_role;

alter function storage_internal.objects_free_blobs() set schema storage;
alter function storage_internal.objects_free_replaced_blobs() set schema storage;
alter function storage_internal.objects_free_all_blobs() set schema storage;
alter function storage_internal.update_updated_at_column() set schema storage;
alter function storage_internal.enforce_bucket_name_length() set schema storage;

drop function storage.object_delete_prefix(text, text, bigint), storage.signing_secret_set(text, text),
  storage.signing_secret_set(bytea, text);
-- The key may not be text; every server start stores it again.
truncate storage.signing_key;
alter table storage.signing_key drop column kid, alter column secret type text;
comment on column storage.signing_key.secret is null;
drop schema storage_internal cascade;

{{ install_snapshot "012" }}

do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p where p.pronamespace = 'storage'::regnamespace loop
    execute format('comment on function %s is null', f);
  end loop;
end
$$;
-- storage_server stays: roles are cluster-wide and other databases may use it.
