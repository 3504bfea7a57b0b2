-- The trigger functions of storage.objects and storage.buckets. The triggers themselves are
-- created by the migrations (003, 005, 008, 013); their functions live here so that each has
-- one home, and outside the storage schema, which holds only what callers use.

-- storage_internal.objects_guard() — BEFORE INSERT OR UPDATE on storage.objects, per row.
-- A row can only point at bytes its writer may have: request roles (anyone but the tables'
-- owner and superusers) may give a row a version, on INSERT or by UPDATE, only when it is
--   - the version of an upload in flight for that very key (storage.blob_uploads: only the
--     uploader was given it, by storage_internal.object_upload_prepare; the commit writes the
--     row with it), or
--   - the version of a row the writer may read under its own policies, described alike (a copy
--     shares bytes its writer could download anyway: storage.object_copy).
-- A forged or copied version of bytes the writer cannot read is refused (42501) whatever the
-- writer's INSERT and UPDATE policies allow, and so is setting it to NULL on an existing row.
-- The metadata keys that describe the bytes themselves (size, contentLength, eTag) change only
-- with them; the descriptive ones (mimetype, cacheControl, lastModified…) are the writer's.
-- SECURITY INVOKER on purpose: "may read" is answered by the writer's own SELECT policies.
create or replace function storage_internal.objects_guard() returns trigger
  language plpgsql
  as $$
begin
  if tg_op = 'UPDATE' and new.version is not distinct from old.version then
    if storage_internal.blob_facts(new.metadata) is distinct from storage_internal.blob_facts(old.metadata)
       and not storage_internal.writes_unchecked() then
      raise exception using errcode = '42501',
        message = 'storage.objects.metadata: size, contentLength and eTag describe the stored bytes and change only with them (an upload or a copy)';
    end if;
    return new;
  end if;
  if new.version is null then
    if tg_op = 'UPDATE' and not storage_internal.writes_unchecked() then
      raise exception using errcode = '42501',
        message = 'storage.objects.version cannot be cleared: delete the object instead';
    end if;
    return new;
  end if;
  -- Separate IFs: a helper asking storage_internal.called_by must be called from a simple
  -- expression (a subquery in the same condition would put a frame in between).
  if storage_internal.blob_upload_active(new.version, new.bucket_id, new.name) then
    return new;
  end if;
  if storage_internal.writes_unchecked()
     or exists (select from storage.objects o
                where o.version = new.version
                  and storage_internal.blob_facts(o.metadata) is not distinct from storage_internal.blob_facts(new.metadata)) then
    return new;
  end if;
  raise exception using errcode = '42501',
    message = 'storage.objects.version must be an upload in flight for this key, or the bytes of an object the writer may read (with their size and eTag)';
end
$$;
revoke all on function storage_internal.objects_guard() from public;
comment on function storage_internal.objects_guard() is
  'Trigger (before insert or update on storage.objects): a request role may point a row only at an upload in flight for its key or at bytes it may read; size and eTag change only with the bytes. 42501 otherwise.';

-- storage_internal.blob_facts(metadata) → jsonb: what a row's metadata says about the bytes
-- themselves (size, contentLength, eTag), as opposed to how they are served.
create or replace function storage_internal.blob_facts(metadata jsonb) returns jsonb
  language sql immutable parallel safe
  as $$
    select jsonb_build_array(metadata -> 'size', metadata -> 'contentLength', metadata -> 'eTag')
  $$;
revoke all on function storage_internal.blob_facts(jsonb) from public;
grant execute on function storage_internal.blob_facts(jsonb) to anon, authenticated, service_role;
comment on function storage_internal.blob_facts(jsonb) is
  'Internal: the metadata keys that describe the stored bytes (size, contentLength, eTag).';

-- storage_internal.writes_unchecked() → boolean: whether the current role is exempt from
-- objects_guard: a superuser or a member of the tables' owner (the DBA, migrations, the
-- collector's SECURITY DEFINER functions).
create or replace function storage_internal.writes_unchecked() returns boolean
  language sql stable
  as $$
    select coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user), false)
        or pg_catalog.pg_has_role(current_user,
             (select c.relowner from pg_catalog.pg_class c where c.oid = 'storage.objects'::regclass), 'MEMBER')
  $$;
revoke all on function storage_internal.writes_unchecked() from public;
grant execute on function storage_internal.writes_unchecked() to anon, authenticated, service_role;
comment on function storage_internal.writes_unchecked() is
  'Internal: whether the current role (a superuser or the tables'' owner) is exempt from the objects_guard trigger.';

-- storage_internal.metadata_size(metadata) → bigint: the size a row's metadata records for its
-- bytes, or NULL when it records none that fits a bigint (a SQL caller may write anything
-- there; freeing a blob must not fail on it). The collector sums it as the bytes it freed.
create or replace function storage_internal.metadata_size(metadata jsonb) returns bigint
  language sql immutable parallel safe
  as $$
    select case when jsonb_typeof(metadata -> 'size') = 'number'
                 and (metadata ->> 'size')::numeric between 0 and 9223372036854775807
                then (metadata ->> 'size')::numeric::bigint end
  $$;
revoke all on function storage_internal.metadata_size(jsonb) from public;
comment on function storage_internal.metadata_size(jsonb) is
  'Internal: the size a row''s metadata records (NULL when none fits a bigint); queued with a freed blob.';

-- storage_internal.objects_free_blobs() — AFTER DELETE on storage.objects, per statement.
-- Queues each distinct version of the deleted rows in storage.blobs_freed. No "still
-- referenced?" check here: two transactions removing the last two rows of one blob would each
-- see the other's row and neither would queue it. The collector checks at delete time, when
-- every such transaction has ended. SECURITY DEFINER: callers need no right on the queue.
create or replace function storage_internal.objects_free_blobs() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into storage.blobs_freed (version, bucket_id, size)
  select distinct on (o.version) o.version, o.bucket_id, storage_internal.metadata_size(o.metadata)
  from old_rows o
  where o.version is not null;
  return null;
end
$$;
revoke all on function storage_internal.objects_free_blobs() from public;
comment on function storage_internal.objects_free_blobs() is
  'Trigger (after delete on storage.objects): queues the blobs of deleted rows in storage.blobs_freed.';

-- storage_internal.objects_free_replaced_blobs() — AFTER UPDATE on storage.objects, per
-- statement. Queues the versions the statement dropped (an overwrite), not those it kept (a
-- move or a metadata change). Compared by version, not by row id, so an UPDATE that changes
-- ids is safe too.
create or replace function storage_internal.objects_free_replaced_blobs() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into storage.blobs_freed (version, bucket_id, size)
  select distinct on (o.version) o.version, o.bucket_id, storage_internal.metadata_size(o.metadata)
  from old_rows o
  where o.version is not null
    and not exists (select from new_rows n where n.version = o.version);
  return null;
end
$$;
revoke all on function storage_internal.objects_free_replaced_blobs() from public;
comment on function storage_internal.objects_free_replaced_blobs() is
  'Trigger (after update on storage.objects): queues the blobs an update stopped referencing (an overwrite).';

-- storage_internal.objects_free_all_blobs() — BEFORE TRUNCATE on storage.objects. TRUNCATE
-- skips row triggers: queue every blob first (only the owner may truncate).
create or replace function storage_internal.objects_free_all_blobs() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into storage.blobs_freed (version, bucket_id, size)
  select distinct on (o.version) o.version, o.bucket_id, storage_internal.metadata_size(o.metadata)
  from storage.objects o where o.version is not null;
  return null;
end
$$;
revoke all on function storage_internal.objects_free_all_blobs() from public;
comment on function storage_internal.objects_free_all_blobs() is
  'Trigger (before truncate on storage.objects): queues every blob.';

-- storage_internal.update_updated_at_column() — BEFORE UPDATE on storage.objects.
create or replace function storage_internal.update_updated_at_column() returns trigger
  language plpgsql
  as $$
begin
  new.updated_at = now();
  return new;
end
$$;
comment on function storage_internal.update_updated_at_column() is
  'Trigger (before update on storage.objects): sets updated_at.';

-- storage_internal.enforce_bucket_name_length() — BEFORE INSERT OR UPDATE OF name on
-- storage.buckets: names longer than 100 characters are refused also for direct inserts.
create or replace function storage_internal.enforce_bucket_name_length() returns trigger
  language plpgsql
  as $$
begin
  if length(new.name) > 100 then
    raise exception 'bucket name "%" is too long (% characters). Max is 100.', new.name, length(new.name);
  end if;
  return new;
end
$$;
comment on function storage_internal.enforce_bucket_name_length() is
  'Trigger (before insert or update of name on storage.buckets): refuses names over 100 characters.';
