-- storage.bucket_empty(id) → bigint
-- Queues a durable job that deletes every object of the bucket created before now, as the
-- calling role with its request settings (RLS: DELETE and SELECT policies apply to the job as
-- they would have to the caller; service_role deletes all), and returns the job's id, or NULL
-- when the caller sees no object to delete. The servers work the job in batches
-- (storage_internal.bucket_empty_work); storage.bucket_empty_jobs shows its progress. The
-- bucket must be visible to the caller, and a bucket holding more than 200 000 objects is
-- refused, as in the reference.
-- Errors: ST001 missing or hidden, ST013 too many objects.
create or replace function storage.bucket_empty(id text) returns bigint
  language plpgsql
  as $$
#variable_conflict use_column
declare
  max_objects constant bigint := 200000;
begin
  perform from storage.buckets where id = bucket_empty.id;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
  if storage_internal.bucket_object_count(bucket_empty.id, max_objects + 1) > max_objects then
    raise exception using errcode = 'ST013',
      message = 'Unable to empty the bucket because it contains too many objects';
  end if;
  if not exists (select from storage.objects where bucket_id = bucket_empty.id) then
    return null;
  end if;
  return storage_internal.bucket_empty_enqueue(bucket_empty.id);
end
$$;
comment on function storage.bucket_empty(text) is
  'Queues a job deleting, as the caller (RLS: DELETE and SELECT policies), every object of a bucket created before now; returns its id (see storage.bucket_empty_jobs), NULL when the caller sees no object. Raises ST001 missing or hidden, ST013 over 200 000 objects.';

-- storage_internal.bucket_empty_enqueue(bucket_id) → bigint
-- Records the job of storage.bucket_empty under the caller's identity: its role (SET ROLE, as
-- the server's prelude does, or else the session's login role; service_role for a caller RLS
-- does not apply to, such as a DBA) and the request settings that policies read. The raw token (request.jwt) and the request headers are not kept: they are
-- credentials, and policies have the claims. SECURITY DEFINER so callers need no right on the
-- jobs table; the identity is read here, never taken from an argument, so no caller can queue
-- a job as someone else. It works only when called by storage.bucket_empty, which first checks
-- the bucket (storage_internal.called_by): a direct call is refused (42501).
create or replace function storage_internal.bucket_empty_enqueue(bucket_id text) returns bigint
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  _id bigint;
  _role text;
begin
  if not storage_internal.called_by('storage.bucket_empty') then
    raise exception using errcode = '42501', message = 'storage_internal.bucket_empty_enqueue may only be called by storage.bucket_empty';
  end if;
  -- The caller: the role it SET, else its login role. One RLS does not apply to (a superuser,
  -- the owner, a BYPASSRLS role) deletes everything either way: the job runs as service_role,
  -- a role the servers may assume.
  _role := case when current_setting('role') = 'none' then session_user::text else current_setting('role') end;
  if exists (select from pg_roles r
             where r.rolname = _role
               and (r.rolsuper or r.rolbypassrls
                    or pg_has_role(r.oid, (select c.relowner from pg_class c where c.oid = 'storage.objects'::regclass), 'MEMBER'))) then
    _role := 'service_role';
  end if;
  insert into storage.bucket_empty_jobs (bucket_id, created_before, role, settings)
  select bucket_empty_enqueue.bucket_id, now(), _role,
         jsonb_strip_nulls(jsonb_object_agg(s, current_setting(s, true)))
  from unnest(array['request.jwt.claim.role', 'request.jwt.claim.sub', 'request.jwt.claims',
                    'request.method', 'request.path', 'storage.operation',
                    'storage.allow_delete_query']) s
  returning id into _id;
  return _id;
end
$$;
revoke all on function storage_internal.bucket_empty_enqueue(text) from public;
grant execute on function storage_internal.bucket_empty_enqueue(text) to anon, authenticated, service_role;
comment on function storage_internal.bucket_empty_enqueue(text) is
  'Internal, SECURITY DEFINER: records a bucket-empty job under the caller''s role and claims, for storage.bucket_empty only (42501 otherwise).';

-- storage_internal.bucket_empty_work(batch_size) → table(job_id, deleted, done, error)
-- Works one batch of the oldest pending empty job that no other session is working (FOR
-- UPDATE SKIP LOCKED, so any number of servers can share the jobs): deletes up to batch_size
-- objects, in name order from where the job stopped, under the job's role and settings, and
-- records the progress. Returns one row for the job worked, none when no job is pending. A
-- batch that fails is rolled back and counted; the fifth failure ends the job with its error.
-- Callable by the owner and storage_server, the servers' role (it assumes the job's role,
-- which needs membership in it: SECURITY INVOKER, since a SECURITY DEFINER function cannot
-- switch roles).
create or replace function storage_internal.bucket_empty_work(batch_size integer default 1000)
  returns table (job_id bigint, deleted bigint, done boolean, error text)
  language plpgsql
  as $$
#variable_conflict use_column
declare
  j storage.bucket_empty_jobs;
  _role text := current_setting('role');
  _saved jsonb := '{}';
  _seen int;
  _deleted int;
  _last text;
  _kv record;
begin
  select * into j from storage.bucket_empty_jobs x
  where x.finished_at is null
  order by x.id
  limit 1
  for update skip locked;
  if not found then
    return;
  end if;
  -- The job's settings are set transaction-locally and put back after the batch, so nothing
  -- of the job's identity outlives it in the caller's transaction.
  for _kv in select * from jsonb_each_text(j.settings) loop
    _saved := _saved || jsonb_build_object(_kv.key, coalesce(current_setting(_kv.key, true), ''));
  end loop;
  begin
    perform set_config('role', j.role, true);
    for _kv in select * from jsonb_each_text(j.settings) loop
      perform set_config(_kv.key, _kv.value, true);
    end loop;
    with batch as (
      select o.id, o.name from storage.objects o
      where o.bucket_id = j.bucket_id
        and o.created_at <= j.created_before
        and (j.last_name is null or o.name collate "C" > j.last_name)
      order by o.name collate "C"
      limit greatest(batch_size, 1)
    ), gone as (
      delete from storage.objects o using batch where o.id = batch.id returning 1
    )
    select (select count(*) from batch), (select count(*) from gone),
           (select b.name from batch b order by b.name collate "C" desc limit 1)
    into _seen, _deleted, _last;
    perform set_config('role', _role, true);
    perform set_config(k, v, true) from jsonb_each_text(_saved) as kv(k, v);
  exception when others then
    -- The failed block's settings are rolled back with it.
    update storage.bucket_empty_jobs x
    set attempts = x.attempts + 1, error = sqlerrm,
        started_at = coalesce(x.started_at, now()),
        finished_at = case when x.attempts + 1 >= 5 then now() end
    where x.id = j.id
    returning x.id, x.deleted, x.finished_at is not null, x.error
    into job_id, deleted, done, error;
    return next;
    return;
  end;
  update storage.bucket_empty_jobs x
  set deleted = x.deleted + _deleted,
      last_name = coalesce(_last, x.last_name),
      started_at = coalesce(x.started_at, now()),
      finished_at = case when _seen < greatest(batch_size, 1) then now() end,
      error = null
  where x.id = j.id
  returning x.id, x.deleted, x.finished_at is not null, x.error
  into job_id, deleted, done, error;
  return next;
end
$$;
revoke all on function storage_internal.bucket_empty_work(integer) from public;
grant execute on function storage_internal.bucket_empty_work(integer) to storage_server;
comment on function storage_internal.bucket_empty_work(integer) is
  'Internal, for the servers'' collector (storage_server): works one batch of the oldest pending bucket-empty job as the job''s role and claims.';
