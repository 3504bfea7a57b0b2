-- Storage events: a transactional outbox. Every change of storage.objects — through REST, TUS,
-- S3, or a SQL caller's plain INSERT, UPDATE or DELETE — writes its events into storage.events
-- in the same transaction, from statement-level triggers (as the blob queue is fed); when
-- storage.events_notify is on, a trigger on storage.events announces each with
-- pg_notify('storage_events', …). A rolled-back change emits nothing; a committed one cannot lose its events. The servers' dispatcher (package events, one leader at
-- a time through the lease 'events') POSTs them to WEBHOOK_URL and marks each delivered.
--
-- Event names are the reference's, inferred from the change itself:
--   INSERT                                   ObjectCreated:Post (ObjectCreated:Copy under a copy)
--   UPDATE of version                        ObjectCreated:Put  (ObjectCreated:Copy under a copy)
--   UPDATE of bucket_id or name              ObjectRemoved:Move (the old key), then
--                                            ObjectCreated:Move (the new key, with oldObject)
--   UPDATE of metadata or user_metadata only ObjectUpdated:Metadata (ObjectCreated:Copy under a
--                                            copy: S3's CopyObject onto itself)
--   DELETE                                   ObjectRemoved:Delete
-- "Under a copy" means storage.operation is storage.object.copy or storage.s3.object.copy. An
-- UPDATE that changes none of those columns (owner, last_accessed_at…) emits nothing. OLD and
-- NEW rows of an UPDATE are paired by id; a row whose id changed counts as deleted and created.
-- TRUNCATE (the owner's alone) emits nothing.
--
-- Order: an event's id is drawn when its statement has changed (and locked) the row, and two
-- transactions changing one object wait for each other on its row lock or unique index, so
-- per object, id order is commit order. Across objects it is not (a lower id may commit after
-- a higher one): the dispatcher never keeps a "delivered up to" cursor, it marks each event.
--
-- Payload, the reference's: {"name", "bucketId", "version", "metadata" (the row's),
-- "uploadType" (ObjectCreated only: "s3" for storage.operation storage.s3.*, "resumable" for
-- storage.tus.*, else "standard"), "reqId" (the request's storage.request_id, absent for SQL
-- callers), "oldObject" (ObjectCreated:Move: {"name", "bucketId", "version", "reqId"})}.

-- Notifications are opt-in (storage.events_notify = on, e.g. ALTER DATABASE … SET
-- storage.events_notify = on): a transaction that notifies takes, at commit, a lock every
-- other notifying transaction of the cluster waits for, held through its WAL flush, so
-- notifying commits happen one at a time. Measured on the 2-core machine `make bench` runs on
-- (fsync on, pgbench, an upload's two SQL calls, 32 clients): 1,090 uploads/s without events,
-- 960–985 with events recorded, 195–238 with events notified. The dispatcher polls instead
-- (EVENTS_POLL_INTERVAL), and wakes at once on notifications when they are on.

-- Each trigger writes its statement's events with one INSERT … SELECT from its transition
-- tables, in key order, whatever the statement's size (a DBA's DELETE of a million rows writes
-- a million events, streaming: nothing is aggregated in memory first).

-- storage_internal.event_context() → (upload_type, req, copy): what the events of the current
-- statement take from the request's settings: the door's uploadType (from storage.operation),
-- {"reqId": storage.request_id} ({} for SQL callers), whether the statement is a copy.
create or replace function storage_internal.event_context(out upload_type text, out req jsonb, out copy boolean)
  language sql
  stable
  as $$
    select case when o like 'storage.s3.%' then 's3' when o like 'storage.tus.%' then 'resumable' else 'standard' end,
           jsonb_strip_nulls(jsonb_build_object('reqId', nullif(current_setting('storage.request_id', true), ''))),
           o in ('storage.object.copy', 'storage.s3.object.copy')
    from (select coalesce(current_setting('storage.operation', true), '') as o) s
  $$;
revoke all on function storage_internal.event_context() from public;
comment on function storage_internal.event_context() is
  'Internal, for the storage.objects event triggers (owner only): the uploadType, reqId and copy flag of the current statement, from the request''s settings.';

-- storage_internal.event_payload(…) → jsonb: an event's payload, the reference's shape:
-- {name, bucketId, version, metadata, uploadType (ObjectCreated:* only), reqId (requests
-- only), oldObject (ObjectCreated:Move: {name, bucketId, version, reqId})}.
create or replace function storage_internal.event_payload(type text, name text, bucket_id text, version text,
  metadata jsonb, old jsonb, upload_type text, req jsonb) returns jsonb
  language sql
  immutable parallel safe
  as $$
    select jsonb_build_object('name', name, 'bucketId', bucket_id, 'version', version, 'metadata', metadata)
           || case when type like 'ObjectCreated:%' then jsonb_build_object('uploadType', upload_type) else '{}' end
           || req
           || case when old is not null then jsonb_build_object('oldObject', old || req) else '{}' end
  $$;
revoke all on function storage_internal.event_payload(text, text, text, text, jsonb, jsonb, text, jsonb) from public;
comment on function storage_internal.event_payload(text, text, text, text, jsonb, jsonb, text, jsonb) is
  'Internal, for the storage.objects event triggers (owner only): an event''s payload in the reference''s shape.';

-- storage_internal.objects_events_insert() — AFTER INSERT on storage.objects, per statement.
create or replace function storage_internal.objects_events_insert() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  c record := storage_internal.event_context();
  _type text := case when c.copy then 'ObjectCreated:Copy' else 'ObjectCreated:Post' end;
begin
  insert into storage.events (type, bucket_id, name, version, payload)
  select _type, n.bucket_id, n.name, n.version,
         storage_internal.event_payload(_type, n.name, n.bucket_id, n.version, n.metadata, null, c.upload_type, c.req)
  from new_rows n
  order by n.bucket_id, n.name collate "C";
  return null;
end
$$;
revoke all on function storage_internal.objects_events_insert() from public;
comment on function storage_internal.objects_events_insert() is
  'Trigger (after insert on storage.objects): records ObjectCreated:Post (ObjectCreated:Copy under a copy) per row in storage.events.';

-- storage_internal.objects_events_update() — AFTER UPDATE on storage.objects, per statement
-- (an upsert's updated rows come here, its inserted ones to objects_events_insert).
create or replace function storage_internal.objects_events_update() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  c record := storage_internal.event_context();
begin
  with pairs as (
    select o.bucket_id as old_bucket, o.name as old_name, o.version as old_version, o.metadata as old_metadata,
           n.bucket_id, n.name, n.version, n.metadata,
           case
             when n.id is null then 'delete'
             when o.id is null then 'insert'
             when o.bucket_id is distinct from n.bucket_id or o.name is distinct from n.name then 'move'
             when o.version is distinct from n.version then 'put'
             when o.metadata is distinct from n.metadata or o.user_metadata is distinct from n.user_metadata then 'metadata'
           end as kind
    from old_rows o full join new_rows n on n.id = o.id
  ),
  evs as (
    -- The old key's event first: ObjectRemoved:Move (or Delete) before the new key's; both
    -- sort under the new key (k_bucket, k_name).
    select case p.kind when 'move' then 'ObjectRemoved:Move' else 'ObjectRemoved:Delete' end as type,
           p.old_bucket as bucket_id, p.old_name as name, p.old_version as version, p.old_metadata as metadata,
           null::jsonb as old, coalesce(p.bucket_id, p.old_bucket) as k_bucket, coalesce(p.name, p.old_name) as k_name, 1 as ord
    from pairs p where p.kind in ('move', 'delete')
    union all
    select case
             when p.kind = 'move' then 'ObjectCreated:Move'
             when c.copy then 'ObjectCreated:Copy'
             when p.kind = 'put' then 'ObjectCreated:Put'
             when p.kind = 'metadata' then 'ObjectUpdated:Metadata'
             else 'ObjectCreated:Post'
           end,
           p.bucket_id, p.name, p.version, p.metadata,
           case when p.kind = 'move' then jsonb_build_object('name', p.old_name, 'bucketId', p.old_bucket, 'version', p.old_version) end,
           p.bucket_id, p.name, 2
    from pairs p where p.kind in ('move', 'put', 'metadata', 'insert')
  )
  insert into storage.events (type, bucket_id, name, version, payload)
  select e.type, e.bucket_id, e.name, e.version,
         storage_internal.event_payload(e.type, e.name, e.bucket_id, e.version, e.metadata, e.old, c.upload_type, c.req)
  from evs e
  order by e.k_bucket, e.k_name collate "C", e.ord;
  return null;
end
$$;
revoke all on function storage_internal.objects_events_update() from public;
comment on function storage_internal.objects_events_update() is
  'Trigger (after update on storage.objects): records ObjectCreated:Put, ObjectRemoved:Move + ObjectCreated:Move, ObjectUpdated:Metadata (ObjectCreated:Copy under a copy) per changed row in storage.events.';

-- storage_internal.objects_events_delete() — AFTER DELETE on storage.objects, per statement.
create or replace function storage_internal.objects_events_delete() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  c record := storage_internal.event_context();
begin
  insert into storage.events (type, bucket_id, name, version, payload)
  select 'ObjectRemoved:Delete', o.bucket_id, o.name, o.version,
         storage_internal.event_payload('ObjectRemoved:Delete', o.name, o.bucket_id, o.version, o.metadata, null, c.upload_type, c.req)
  from old_rows o
  order by o.bucket_id, o.name collate "C";
  return null;
end
$$;
revoke all on function storage_internal.objects_events_delete() from public;
comment on function storage_internal.objects_events_delete() is
  'Trigger (after delete on storage.objects): records ObjectRemoved:Delete per row in storage.events.';

-- storage_internal.events_notify() — AFTER INSERT on storage.events, per row, when
-- storage.events_notify is on (the trigger's WHEN): announces the event on channel
-- storage_events as {"id", "type", "bucketId", "name"}. Off, the WHEN costs a setting read per
-- event and nothing fires.
create or replace function storage_internal.events_notify() returns trigger
  language plpgsql
  as $$
begin
  perform pg_notify('storage_events',
    json_build_object('id', new.id, 'type', new.type, 'bucketId', new.bucket_id, 'name', new.name)::text);
  return null;
end
$$;
revoke all on function storage_internal.events_notify() from public;
comment on function storage_internal.events_notify() is
  'Trigger (after insert on storage.events, when storage.events_notify is on): notifies channel storage_events of the event.';

-- The dispatcher's side (package events): SECURITY DEFINER, for the owner and the servers'
-- role storage_server only.

-- storage_internal.events_next(max_count, skip_buckets, skip_names) → setof (id, type,
-- bucket_id, name, payload, created_at, attempts): the oldest undelivered events in id order,
-- except those of the objects (skip_buckets[i], skip_names[i]) whose delivery waits out a
-- retry backoff, so that one refused object does not hold up the others.
create or replace function storage_internal.events_next(max_count integer, skip_buckets text[] default '{}',
  skip_names text[] default '{}')
  returns table (id bigint, type text, bucket_id text, name text, payload jsonb, created_at timestamptz, attempts integer)
  language sql
  stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select e.id, e.type, e.bucket_id, e.name, e.payload, e.created_at, e.attempts
    from storage.events e
    where e.delivered_at is null
      and not exists (select from unnest(events_next.skip_buckets, events_next.skip_names) s(b, n)
                      where s.b = e.bucket_id and s.n = e.name)
    order by e.id
    limit events_next.max_count
  $$;
revoke all on function storage_internal.events_next(integer, text[], text[]) from public;
grant execute on function storage_internal.events_next(integer, text[], text[]) to storage_server;
comment on function storage_internal.events_next(integer, text[], text[]) is
  'Internal, for the event dispatcher (storage_server): the oldest undelivered events in id order, except those of the objects given.';

-- storage_internal.events_delivered(ids) → void: the receiver accepted these events.
create or replace function storage_internal.events_delivered(ids bigint[]) returns void
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    update storage.events e
    set delivered_at = now(), attempts = e.attempts + 1, last_error = null
    where e.id = any (events_delivered.ids) and e.delivered_at is null
  $$;
revoke all on function storage_internal.events_delivered(bigint[]) from public;
grant execute on function storage_internal.events_delivered(bigint[]) to storage_server;
comment on function storage_internal.events_delivered(bigint[]) is
  'Internal, for the event dispatcher (storage_server): marks events delivered.';

-- storage_internal.events_failed(ids, errors) → void: delivering ids[i] failed with errors[i];
-- counted and kept for operators (select * from storage.events where last_error is not null).
create or replace function storage_internal.events_failed(ids bigint[], errors text[]) returns void
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    update storage.events e
    set attempts = e.attempts + 1, last_error = f.error
    from unnest(events_failed.ids, events_failed.errors) f(id, error)
    where e.id = f.id and e.delivered_at is null
  $$;
revoke all on function storage_internal.events_failed(bigint[], text[]) from public;
grant execute on function storage_internal.events_failed(bigint[], text[]) to storage_server;
comment on function storage_internal.events_failed(bigint[], text[]) is
  'Internal, for the event dispatcher (storage_server): records failed delivery attempts and their errors.';

-- storage_internal.events_backlog() → (undelivered, oldest): how many events wait, and when
-- the oldest of them was recorded (NULL when none). Reads the partial index of undelivered
-- events only.
create or replace function storage_internal.events_backlog()
  returns table (undelivered bigint, oldest timestamptz)
  language sql
  stable
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select count(*), min(e.created_at) from storage.events e where e.delivered_at is null
  $$;
revoke all on function storage_internal.events_backlog() from public;
grant execute on function storage_internal.events_backlog() to storage_server;
comment on function storage_internal.events_backlog() is
  'Internal, for the event dispatcher (storage_server): the number of undelivered events and the time of the oldest.';

-- storage_internal.events_prune(retention, max_count) → (deleted, undelivered): deletes up to
-- max_count events recorded more than retention ago, delivered or not (an event undelivered
-- that long is given up: the dispatcher logs how many), and returns how many went and how many
-- of them were undelivered. Call again while deleted = max_count.
create or replace function storage_internal.events_prune(retention interval, max_count integer)
  returns table (deleted bigint, undelivered bigint)
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    with gone as (
      delete from storage.events e
      where e.id in (select x.id from storage.events x
                     where x.created_at < now() - events_prune.retention
                     limit events_prune.max_count)
      returning e.delivered_at
    )
    select count(*), count(*) filter (where gone.delivered_at is null) from gone
  $$;
revoke all on function storage_internal.events_prune(interval, integer) from public;
grant execute on function storage_internal.events_prune(interval, integer) to storage_server;
comment on function storage_internal.events_prune(interval, integer) is
  'Internal, for the event dispatcher (storage_server): deletes up to max_count events older than retention; returns how many, and how many of them were undelivered.';

-- storage.events_replay(from_id, to_id) → bigint: delivers the events from_id to to_id
-- (inclusive; to_id NULL: every later one) again, in id order per object, by marking them
-- undelivered; returns how many were. As the caller: the service role and the owner may
-- (UPDATE of delivered_at on storage.events), other request roles get 42501.
create or replace function storage.events_replay(from_id bigint, to_id bigint default null) returns bigint
  language sql
  as $$
    with again as (
      update storage.events e
      set delivered_at = null, last_error = null
      where e.id >= events_replay.from_id
        and (events_replay.to_id is null or e.id <= events_replay.to_id)
        and e.delivered_at is not null
      returning 1
    )
    select count(*) from again
  $$;
revoke all on function storage.events_replay(bigint, bigint) from public;
grant execute on function storage.events_replay(bigint, bigint) to anon, authenticated, service_role;
comment on function storage.events_replay(bigint, bigint) is
  'Marks the delivered events from_id..to_id (to_id NULL: all later) undelivered, so the dispatcher sends them again; returns how many. Service role and owner (UPDATE on storage.events); 42501 for other roles.';
