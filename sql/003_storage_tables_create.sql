-- 003 storage tables: schema storage with storage.buckets and storage.objects, column for
-- column as in Supabase Storage, so existing policies and tools find what they expect.
-- RLS is enabled on both tables and no policy is created: a deployment grants access with its
-- own policies (service_role bypasses RLS). Down drops the schema's tables and trigger
-- functions, and the schema when it is left empty. Takes only locks on the objects it creates.

create schema if not exists storage;
grant usage on schema storage to anon, authenticated, service_role;

create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');

create table storage.buckets (
  id                 text primary key,
  name               text not null,
  owner              uuid,
  owner_id           text,
  created_at         timestamptz default now(),
  updated_at         timestamptz default now(),
  public             boolean default false,
  avif_autodetection boolean default false,
  file_size_limit    bigint,
  allowed_mime_types text[],
  type               storage.buckettype not null default 'STANDARD',
  versioning_status  text not null default 'DISABLED'
    constraint buckets_versioning_status_check
      check (versioning_status in ('DISABLED', 'ENABLED', 'SUSPENDED'))
);
comment on column storage.buckets.owner is 'Deprecated: use owner_id. The creator''s sub when it is a UUID.';
create unique index bname on storage.buckets using btree (name);

create table storage.objects (
  id               uuid primary key default gen_random_uuid(),
  bucket_id        text references storage.buckets (id),
  name             text,
  owner            uuid,
  owner_id         text,
  created_at       timestamptz default now(),
  updated_at       timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata         jsonb,
  user_metadata    jsonb,
  path_tokens      text[] generated always as (string_to_array(name, '/')) stored,
  version          text,
  archived_at      timestamptz,
  is_delete_marker boolean not null default false,
  is_versioned     boolean not null default false
);
comment on column storage.objects.owner is 'Deprecated: use owner_id. The uploader''s sub when it is a UUID.';
-- One row per key. Byte order (COLLATE "C") so the same index serves listing by name.
create unique index bucketid_objname on storage.objects (bucket_id, name collate "C");
-- List v1 is case-insensitive and orders a folder by its name: it walks keys by lower(name)
-- with '/' mapped below every character (keys cannot contain \x01).
create index objects_bucket_list_key on storage.objects (bucket_id, translate(lower(name), '/', E'\x01') collate "C");

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

-- Row privileges only: TRUNCATE would skip RLS and the triggers that keep blobs accounted for.
grant select, insert, update, delete on storage.buckets, storage.objects to anon, authenticated, service_role;

-- Bucket names longer than 100 characters are refused also for direct inserts.
create function storage.enforce_bucket_name_length() returns trigger
  language plpgsql
  as $$
begin
  if length(new.name) > 100 then
    raise exception 'bucket name "%" is too long (% characters). Max is 100.', new.name, length(new.name);
  end if;
  return new;
end
$$;
create trigger enforce_bucket_name_length_trigger
  before insert or update of name on storage.buckets
  for each row execute function storage.enforce_bucket_name_length();

create function storage.update_updated_at_column() returns trigger
  language plpgsql
  as $$
begin
  new.updated_at = now();
  return new;
end
$$;
create trigger update_objects_updated_at
  before update on storage.objects
  for each row execute function storage.update_updated_at_column();

---- create above / drop below ----

drop table storage.objects;
drop table storage.buckets;
drop function storage.update_updated_at_column();
drop function storage.enforce_bucket_name_length();
drop type storage.buckettype;
-- The schema goes too when nothing else lives in it (it may have pre-existed with other objects).
do $$
begin
  if not exists (select from pg_class where relnamespace = 'storage'::regnamespace)
     and not exists (select from pg_proc where pronamespace = 'storage'::regnamespace)
     and not exists (select from pg_type where typnamespace = 'storage'::regnamespace) then
    drop schema storage;
  end if;
end
$$;
