-- 014 resumable uploads (TUS): storage.resumable_uploads holds each upload's state (target,
-- declared length, durable offset, the blob store's state of the partial blob, the MD5 state,
-- expiry), and the API gains the storage_internal.resumable_* steps the server runs as the
-- uploader (sql/api/resumable.sql). object_upload_abort also drops a resumable upload's record;
-- blob_upload_expire leaves resumable uploads to their own expiry. The servers' role
-- storage_server may read storage.blob_uploads: its collector spares the leftovers of uploads in
-- flight (013 took every right on the table from the request roles, and so from the collector
-- running as storage_server). Reversible. No locks on existing tables.

create table storage.resumable_uploads (
  version       text primary key,
  bucket_id     text not null,
  name          text not null,
  owner_id      text,
  upload_length bigint check (upload_length >= 0),
  upload_offset bigint not null default 0 check (upload_offset >= 0),
  size_limit    bigint,
  mimetype      text not null,
  cache_control text not null,
  user_metadata jsonb,
  metadata      text not null default '',
  blob_state    text not null default '',
  md5_state     bytea,
  created_at    timestamptz not null default now(),
  expires_at    timestamptz not null,
  completed_at  timestamptz
);
create index resumable_uploads_expires_at on storage.resumable_uploads (expires_at);
comment on table storage.resumable_uploads is
  'Resumable (TUS) uploads: one row per upload, from creation until it expires. upload_offset bytes of the object are durable in the blob store under version; completed_at is set once the object row was written.';
comment on column storage.resumable_uploads.version is 'The version the object will have; the upload URL carries it.';
comment on column storage.resumable_uploads.owner_id is 'The creator''s sub (NULL: none); only the same sub may resume, inspect or terminate the upload.';
comment on column storage.resumable_uploads.upload_length is 'Declared length in bytes; NULL while deferred (Upload-Defer-Length).';
comment on column storage.resumable_uploads.upload_offset is 'Bytes received and durable.';
comment on column storage.resumable_uploads.size_limit is 'The size limit in force at creation (NULL: none).';
comment on column storage.resumable_uploads.metadata is 'The Upload-Metadata header as stored (cacheControl rewritten), echoed by HEAD.';
comment on column storage.resumable_uploads.blob_state is 'The blob store''s state of the partial blob (opaque: S3 multipart upload id and parts).';
comment on column storage.resumable_uploads.md5_state is 'MD5 of the first upload_offset bytes, as a resumable hash state (the ETag at completion).';
comment on column storage.resumable_uploads.expires_at is 'When the upload expires if nothing more arrives; every append moves it.';
alter table storage.resumable_uploads enable row level security;
revoke all on storage.resumable_uploads from public, anon, authenticated, service_role;

grant select on storage.blob_uploads to storage_server;
create policy blob_uploads_server on storage.blob_uploads for select to storage_server using (true);

{{ install_snapshot "014" }}

---- create above / drop below ----

drop policy blob_uploads_server on storage.blob_uploads;
revoke select on storage.blob_uploads from storage_server;

drop function storage_internal.resumable_create(text, text, boolean, text, text, bigint, jsonb, text, interval),
  storage_internal.resumable_record(text, text, text, bigint, bigint, text, text, jsonb, text, timestamptz),
  storage_internal.resumable_get(text), storage_internal.resumable_check(text, boolean),
  storage_internal.resumable_advance(text, bigint, bigint, bigint, text, bytea, interval),
  storage_internal.resumable_complete(text, bigint, bigint, text, boolean),
  storage_internal.resumable_completed(text, bigint), storage_internal.resumable_terminate(text, text, text, boolean),
  storage_internal.resumable_expire();
{{ install_snapshot "013" }}
drop table storage.resumable_uploads;
