-- 004 storage helpers: the functions users' policies call (storage.foldername, filename,
-- extension, operation, allow_only_operation, allow_any_operation), with Supabase's behaviour.
-- Policies depend on these: later migrations change them only with CREATE OR REPLACE and the
-- same signature, never DROP … CASCADE. Down drops them (only possible with no dependent
-- policy, which is the point). No table locks.

-- 'a/b/c.png' → {a,b}; 'c.png' → {}.
create or replace function storage.foldername(name text) returns text[]
  language sql immutable parallel safe
  as $$
    select coalesce((string_to_array(name, '/'))[1:cardinality(string_to_array(name, '/')) - 1], '{}')
  $$;

-- The last path segment: 'a/b/c.png' → 'c.png'; 'a/b/' → ''.
create or replace function storage.filename(name text) returns text
  language sql immutable parallel safe
  as $$
    select (string_to_array(name, '/'))[cardinality(string_to_array(name, '/'))]
  $$;

-- Text after the last '.' of the last segment; a name without a dot returns the whole filename
-- ('README' → 'README'), as in Supabase.
create or replace function storage.extension(name text) returns text
  language sql immutable parallel safe
  as $$
    select (string_to_array(storage.filename(name), '.'))[cardinality(string_to_array(storage.filename(name), '.'))]
  $$;

-- The operation id of the current request (e.g. 'storage.object.upload'), or NULL outside one.
create or replace function storage.operation() returns text
  language sql stable
  as $$
    select current_setting('storage.operation', true)
  $$;

-- True when the current operation is the given one; a leading 'storage.' on either side is
-- ignored. An empty or NULL expectation never matches.
create or replace function storage.allow_only_operation(expected_operation text) returns boolean
  language sql stable
  as $$
    select coalesce(expected_operation, '') <> ''
       and regexp_replace(expected_operation, '^storage\.', '')
         = regexp_replace(coalesce(storage.operation(), ''), '^storage\.', '')
  $$;

-- True when the current operation is one of the given ones (same prefix rule).
create or replace function storage.allow_any_operation(expected_operations text[]) returns boolean
  language sql stable
  as $$
    select coalesce(bool_or(storage.allow_only_operation(op)), false)
    from unnest(expected_operations) as op
  $$;

grant execute on function
  storage.foldername(text), storage.filename(text), storage.extension(text),
  storage.operation(), storage.allow_only_operation(text), storage.allow_any_operation(text[])
  to anon, authenticated, service_role;

---- create above / drop below ----

drop function storage.allow_any_operation(text[]);
drop function storage.allow_only_operation(text);
drop function storage.operation();
drop function storage.extension(text);
drop function storage.filename(text);
drop function storage.foldername(text);
