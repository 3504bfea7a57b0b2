-- Leader leases. Every server runs background workers of which exactly one may work at a time
-- across all servers: the collector (lease 'collector') and the event dispatcher (lease
-- 'events'). The leader of each holds a named lease, a row of storage_internal.leases that only
-- the owner and these SECURITY DEFINER functions (granted to the servers' role storage_server)
-- can touch, so no request role can take or hold one (an advisory lock can be taken by any
-- role, and held forever). A leader that dies loses its lease when it expires; a leader renews
-- it while it works. Each worker picks its own ttl: the collector's is minutes, the
-- dispatcher's seconds (a killed dispatcher's successor must take over within seconds).

-- storage_internal.lease_take(name, holder, ttl) → boolean: takes the lease name for holder,
-- or renews it when holder has it, until now + ttl; false while another holder's lease runs.
-- now() is the transaction's start: call it in a transaction of its own.
create or replace function storage_internal.lease_take(name text, holder text, ttl interval) returns boolean
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    with taken as (
      insert into storage_internal.leases as l (name, holder, expires_at)
      values (lease_take.name, lease_take.holder, now() + lease_take.ttl)
      on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at
        where l.holder = excluded.holder or l.expires_at <= now()
      returning 1
    )
    select exists (select from taken)
  $$;
revoke all on function storage_internal.lease_take(text, text, interval) from public;
grant execute on function storage_internal.lease_take(text, text, interval) to storage_server;
comment on function storage_internal.lease_take(text, text, interval) is
  'Internal, for the servers'' background leaders (storage_server): takes or renews the named lease until now + ttl; false while another holder''s lease runs.';

-- storage_internal.lease_give_up(name, holder) → void: ends holder's lease name, so another
-- server may lead at once.
create or replace function storage_internal.lease_give_up(name text, holder text) returns void
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    delete from storage_internal.leases l where l.name = lease_give_up.name and l.holder = lease_give_up.holder
  $$;
revoke all on function storage_internal.lease_give_up(text, text) from public;
grant execute on function storage_internal.lease_give_up(text, text) to storage_server;
comment on function storage_internal.lease_give_up(text, text) is
  'Internal, for the servers'' background leaders (storage_server): ends the holder''s named lease.';

-- storage_internal.collector_lease_take(holder, ttl), collector_lease_give_up(holder): the
-- collector's lease ('collector'), under the names servers of earlier versions call, so they
-- keep electing one collector with newer ones during a rolling upgrade.
create or replace function storage_internal.collector_lease_take(holder text, ttl interval) returns boolean
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select storage_internal.lease_take('collector', collector_lease_take.holder, collector_lease_take.ttl)
  $$;
revoke all on function storage_internal.collector_lease_take(text, interval) from public;
grant execute on function storage_internal.collector_lease_take(text, interval) to storage_server;
comment on function storage_internal.collector_lease_take(text, interval) is
  'Internal, for the collector (storage_server): takes or renews the lease ''collector'' until now + ttl; false while another holder''s lease runs.';

create or replace function storage_internal.collector_lease_give_up(holder text) returns void
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select storage_internal.lease_give_up('collector', collector_lease_give_up.holder)
  $$;
revoke all on function storage_internal.collector_lease_give_up(text) from public;
grant execute on function storage_internal.collector_lease_give_up(text) to storage_server;
comment on function storage_internal.collector_lease_give_up(text) is
  'Internal, for the collector (storage_server): ends the holder''s lease ''collector''.';
