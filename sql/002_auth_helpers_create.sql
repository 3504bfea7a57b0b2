-- 002 auth helpers: auth.uid(), auth.role(), auth.jwt() read the request settings the proxy
-- sets per transaction, so policies written for Supabase work verbatim.
-- Created only when absent: a Supabase database already has its own (identical in behaviour).
-- Those we create carry the comment 'storage: created by migration 002'; down drops only those.
-- No table locks.

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

do $$
begin
  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
        )::uuid
      $f$;
    comment on function auth.uid() is 'storage: created by migration 002';
  end if;

  if to_regprocedure('auth.role()') is null then
    create function auth.role() returns text
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
        )::text
      $f$;
    comment on function auth.role() is 'storage: created by migration 002';
  end if;

  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $f$;
    comment on function auth.jwt() is 'storage: created by migration 002';
  end if;
end
$$;

grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;

---- create above / drop below ----

do $$
declare
  f regprocedure;
begin
  foreach f in array array[to_regprocedure('auth.uid()'), to_regprocedure('auth.role()'), to_regprocedure('auth.jwt()')] loop
    if f is not null and obj_description(f, 'pg_proc') = 'storage: created by migration 002' then
      execute format('drop function %s', f);
    end if;
  end loop;
  -- The schema goes only if it is ours and now empty.
  if not exists (select from pg_proc where pronamespace = 'auth'::regnamespace)
     and not exists (select from pg_class where relnamespace = 'auth'::regnamespace) then
    drop schema auth;
  end if;
end
$$;
