-- 018 events: every change of storage.objects records its events (the reference's names and
-- payloads) in the outbox storage.events in the same transaction, from statement-level
-- triggers, and notifies channel storage_events when storage.events_notify is on; the
-- servers' dispatcher delivers them to WEBHOOK_URL. Leases become named (storage_internal.leases: 'collector', 'events').
-- Reversible (the events recorded are dropped). Locks: SHARE ROW EXCLUSIVE on storage.objects
-- briefly (three triggers); ACCESS EXCLUSIVE on storage_internal.collector_lease (dropped).

-- Named leases; the collector's lease moves over.
create table storage_internal.leases (
  name       text primary key,
  holder     text not null,
  expires_at timestamptz not null
);
comment on table storage_internal.leases is
  'Leader leases of the servers'' background workers, by name (collector, events): the holder leads until expires_at.';
insert into storage_internal.leases (name, holder, expires_at)
select 'collector', holder, expires_at from storage_internal.collector_lease;
drop table storage_internal.collector_lease;

create table storage.events (
  id           bigint generated always as identity primary key,
  type         text not null,
  bucket_id    text not null,
  name         text not null,
  version      text,
  payload      jsonb not null,
  created_at   timestamptz not null default now(),
  delivered_at timestamptz,
  attempts     integer not null default 0,
  last_error   text
);
comment on table storage.events is
  'Object events (ObjectCreated:Post|Put|Copy|Move, ObjectRemoved:Delete|Move, ObjectUpdated:Metadata), recorded in the transaction of the change; delivered to WEBHOOK_URL in id order per object. storage.events_replay sends some again.';
comment on column storage.events.payload is 'The webhook event''s payload: name, bucketId, version, metadata, uploadType, reqId, oldObject.';
comment on column storage.events.created_at is 'When the change''s transaction started: the webhook''s applyTime.';
comment on column storage.events.delivered_at is 'When the receiver accepted it (2xx); NULL while it waits.';
comment on column storage.events.attempts is 'Delivery attempts so far.';
comment on column storage.events.last_error is 'Why the last attempt failed (status or network error); NULL after delivery.';
-- The dispatcher's queue: undelivered events in id order.
create index events_undelivered on storage.events (id) where delivered_at is null;
-- Pruning by age: created_at grows with id, so a BRIN index is enough and costs the writes
-- next to nothing.
create index events_created_at on storage.events using brin (created_at);
alter table storage.events enable row level security;
revoke all on storage.events from public, anon, authenticated, service_role;
-- The service role reads events and may send them again (storage.events_replay, or an UPDATE of
-- delivered_at); BYPASSRLS lets it see every row. Other request roles see nothing.
grant select on storage.events to service_role;
grant update (delivered_at, last_error) on storage.events to service_role;

{{ install_snapshot "018" }}

create trigger objects_events_insert
  after insert on storage.objects
  referencing new table as new_rows
  for each statement execute function storage_internal.objects_events_insert();
create trigger objects_events_update
  after update on storage.objects
  referencing old table as old_rows new table as new_rows
  for each statement execute function storage_internal.objects_events_update();
create trigger objects_events_delete
  after delete on storage.objects
  referencing old table as old_rows
  for each statement execute function storage_internal.objects_events_delete();

---- create above / drop below ----

drop trigger objects_events_insert on storage.objects;
drop trigger objects_events_update on storage.objects;
drop trigger objects_events_delete on storage.objects;
drop function storage_internal.objects_events_insert(), storage_internal.objects_events_update(),
  storage_internal.objects_events_delete(), storage_internal.events_record(jsonb),
  storage_internal.events_next(integer, text[], text[]), storage_internal.events_delivered(bigint[]),
  storage_internal.events_failed(bigint[], text[]), storage_internal.events_backlog(),
  storage_internal.events_prune(interval, integer), storage.events_replay(bigint, bigint),
  storage_internal.lease_take(text, text, interval), storage_internal.lease_give_up(text, text);
drop table storage.events;

create table storage_internal.collector_lease (
  id         int primary key default 1 check (id = 1),
  holder     text not null,
  expires_at timestamptz not null
);
comment on table storage_internal.collector_lease is
  'The collector leader''s lease: the server holding it (until expires_at) collects blobs and works bucket-empty jobs.';
insert into storage_internal.collector_lease (id, holder, expires_at)
select 1, holder, expires_at from storage_internal.leases where name = 'collector';
drop table storage_internal.leases;

{{ install_snapshot "017" }}
