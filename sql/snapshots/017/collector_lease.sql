-- The collector's leader lease. Every server runs a collector; exactly one works at a time. The
-- leader holds a lease, a row of storage_internal.collector_lease that only the owner and
-- these SECURITY DEFINER functions (granted to the servers' role storage_server) can touch, so
-- no request role can take or hold it (an advisory lock can be taken by any role, and held
-- forever). A leader that dies loses it when it expires; a leader renews it while it works.

-- storage_internal.collector_lease_take(holder, ttl) → boolean: takes the lease for holder, or
-- renews it when holder has it, until now + ttl; false while another holder's lease runs.
create or replace function storage_internal.collector_lease_take(holder text, ttl interval) returns boolean
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    with taken as (
      insert into storage_internal.collector_lease as l (id, holder, expires_at)
      values (1, collector_lease_take.holder, now() + collector_lease_take.ttl)
      on conflict (id) do update set holder = excluded.holder, expires_at = excluded.expires_at
        where l.holder = excluded.holder or l.expires_at <= now()
      returning 1
    )
    select exists (select from taken)
  $$;
revoke all on function storage_internal.collector_lease_take(text, interval) from public;
grant execute on function storage_internal.collector_lease_take(text, interval) to storage_server;
comment on function storage_internal.collector_lease_take(text, interval) is
  'Internal, for the collector (storage_server): takes or renews the leader lease until now + ttl; false while another holder''s lease runs.';

-- storage_internal.collector_lease_give_up(holder) → void: ends holder's lease, so another
-- server may work at once.
create or replace function storage_internal.collector_lease_give_up(holder text) returns void
  language sql
  security definer
  set search_path = pg_catalog, pg_temp
  as $$
    delete from storage_internal.collector_lease l where l.holder = collector_lease_give_up.holder
  $$;
revoke all on function storage_internal.collector_lease_give_up(text) from public;
grant execute on function storage_internal.collector_lease_give_up(text) to storage_server;
comment on function storage_internal.collector_lease_give_up(text) is
  'Internal, for the collector (storage_server): ends the holder''s leader lease.';
