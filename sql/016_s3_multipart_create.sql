-- 016 S3 multipart uploads: storage.s3_multipart_uploads holds each upload in progress (the
-- object's future version, which is also its UploadId; target; creator; size limit; content
-- type, cache control and user metadata; the blob store's state; expiry) and
-- storage.s3_multipart_parts its parts (size, MD5, the store's ETag). Request roles read their
-- own rows (RLS by sub; the service role all) and write nothing: the API gains the
-- storage_internal.s3_multipart_* steps the server runs (sql/api/s3_multipart.sql) and the
-- listings storage.s3_list_multipart_uploads and storage.s3_list_parts. A pending upload
-- blocks deleting its bucket (ST020), as in the reference. object_upload_abort also drops a
-- multipart upload's record; blob_upload_expire leaves multipart uploads to their own expiry.
-- The servers' role storage_server reads the uploads (reconcile). New SQLSTATEs ST016–ST021.
-- Reversible. No locks on existing tables but a SHARE ROW EXCLUSIVE on storage.buckets for
-- the foreign key (brief).

create table storage.s3_multipart_uploads (
  version       text primary key,
  bucket_id     text not null references storage.buckets (id),
  name          text not null,
  owner_id      text,
  size_limit    bigint,
  mimetype      text not null,
  cache_control text not null,
  user_metadata jsonb not null default '{}',
  blob_state    text not null default '',
  created_at    timestamptz not null default now(),
  expires_at    timestamptz not null,
  completing_at timestamptz
);
create index s3_multipart_uploads_key on storage.s3_multipart_uploads (bucket_id, name collate "C", created_at);
create index s3_multipart_uploads_expires_at on storage.s3_multipart_uploads (expires_at);
comment on table storage.s3_multipart_uploads is
  'S3 multipart uploads in progress: one row per upload, from CreateMultipartUpload until it completes, is aborted or expires. version is the UploadId and the version the object will have.';
comment on column storage.s3_multipart_uploads.owner_id is 'The creator''s sub (NULL: none); only the same sub may upload parts to, list, complete or abort the upload.';
comment on column storage.s3_multipart_uploads.size_limit is 'The size limit in force at creation (NULL: none); parts and completion are checked against the limit in force then.';
comment on column storage.s3_multipart_uploads.blob_state is 'The blob store''s state of the upload (opaque: the backing S3 multipart upload id).';
comment on column storage.s3_multipart_uploads.expires_at is 'When the upload expires if no part arrives; every part moves it.';
comment on column storage.s3_multipart_uploads.completing_at is 'Set while a CompleteMultipartUpload assembles the object (for a minute at most): parts and a second completion wait.';

create table storage.s3_multipart_parts (
  version     text not null references storage.s3_multipart_uploads (version) on delete cascade,
  part_number integer not null check (part_number between 1 and 10000),
  size        bigint not null check (size >= 0),
  etag        text not null,
  blob_etag   text not null,
  created_at  timestamptz not null default now(),
  primary key (version, part_number)
);
comment on table storage.s3_multipart_parts is
  'The parts of S3 multipart uploads in progress, one row per part number (a part uploaded again replaces its row).';
comment on column storage.s3_multipart_parts.etag is 'Hex MD5 of the part: the ETag its client got.';
comment on column storage.s3_multipart_parts.blob_etag is 'The blob store''s ETag of the part, which completing the upload in the store takes.';

alter table storage.s3_multipart_uploads enable row level security;
alter table storage.s3_multipart_parts enable row level security;
revoke all on storage.s3_multipart_uploads, storage.s3_multipart_parts from public, anon, authenticated, service_role;
grant select on storage.s3_multipart_uploads, storage.s3_multipart_parts to anon, authenticated, service_role, storage_server;
create policy s3_multipart_uploads_own on storage.s3_multipart_uploads for select to anon, authenticated
  using (owner_id is not distinct from nullif(current_setting('request.jwt.claim.sub', true), ''));
create policy s3_multipart_parts_own on storage.s3_multipart_parts for select to anon, authenticated
  using (exists (select from storage.s3_multipart_uploads u where u.version = s3_multipart_parts.version));
create policy s3_multipart_uploads_server on storage.s3_multipart_uploads for select to storage_server using (true);
create policy s3_multipart_parts_server on storage.s3_multipart_parts for select to storage_server using (true);

{{ install_snapshot "016" }}

---- create above / drop below ----

drop function storage_internal.s3_multipart_create(text, text, text, text, jsonb, interval),
  storage_internal.s3_multipart_record(text, text, text, bigint, text, text, jsonb, timestamptz),
  storage_internal.s3_multipart_get(text, text, text),
  storage_internal.s3_multipart_part_check(text, text, text, integer, bigint),
  storage_internal.s3_multipart_size(text, integer),
  storage_internal.s3_multipart_state(text, text),
  storage_internal.s3_multipart_part_record(text, integer, bigint, text, text, interval),
  storage_internal.s3_multipart_complete(text, text, text, integer[], text[]),
  storage_internal.s3_multipart_parts_of(text),
  storage_internal.s3_multipart_completing(text),
  storage_internal.s3_multipart_commit(text, text, text, bigint, text),
  storage_internal.s3_multipart_forget(text),
  storage_internal.s3_multipart_abort(text, text, text),
  storage.s3_list_multipart_uploads(text, text, text, text, text, integer),
  storage.s3_list_parts(text, text, text, integer, integer),
  storage_internal.s3_multipart_expire();
{{ install_snapshot "015" }}
drop table storage.s3_multipart_parts;
drop table storage.s3_multipart_uploads;
