-- 001 roles: the request roles a JWT maps to.
-- Creates anon, authenticated, service_role (BYPASSRLS) and authenticator only when missing:
-- roles are cluster-wide, so a Supabase database (or a sibling database) may already have them.
-- Makes the migrating role a member of the three request roles so it can SET ROLE per request.
-- Down: leaves the roles in place (other databases of the cluster may use them). No table locks.

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator nologin noinherit;
  end if;
end
$$;

-- The server connects as the migrating role and switches with set_config('role', …) per
-- request, which needs membership. Grant only what is missing: a role that already is a member
-- (a superuser, or a harness that granted it up front) needs nothing and may lack the right to
-- grant.
do $$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated', 'service_role'] loop
    if not pg_has_role(current_user, r, 'MEMBER') then
      execute format('grant %I to %I', r, current_user);
    end if;
    if not pg_has_role('authenticator', r, 'MEMBER') then
      execute format('grant %I to authenticator', r);
    end if;
  end loop;
end
$$;

---- create above / drop below ----

-- Roles are cluster-wide and may serve other databases; dropping them here could break those.
-- Nothing to undo.
