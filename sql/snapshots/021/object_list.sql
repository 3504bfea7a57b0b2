-- Listing. Folders are not stored: they are derived from the keys, found by skipping over
-- them in the index (one index probe per entry of the page), so a page costs the same in a
-- bucket of a thousand objects as in one of millions.

-- storage_internal.prefix_successor(p) → text: the smallest string greater than every string that
-- starts with p ('' → NULL: no bound). Keys are ASCII, so bumping the last character works.
create or replace function storage_internal.prefix_successor(p text) returns text
  language sql immutable parallel safe
  as $$
    select case when p = '' then null else left(p, -1) || chr(ascii(right(p, 1)) + 1) end
  $$;

-- storage.object_list(bucket_id, prefix, limits, offsets, search, sort_column, sort_order)
--   → table(name, id, updated_at, created_at, last_accessed_at, metadata)
-- List v1 (storage-js list): the immediate children of a folder, as the calling role sees them
-- (RLS SELECT; a missing bucket lists nothing). A prefix not ending in '/' gets one. Matching
-- is case-insensitive and search is a starts-with filter appended to the prefix ('%' and '_'
-- are literal). Entries are named relative to the prefix: a folder entry (a next segment with
-- deeper keys; id, timestamps and metadata NULL) or a file entry (a key at that depth).
-- sort_column 'name' (default) interleaves folders and files by lower(name), bytewise; the
-- other columns (updated_at, created_at, last_accessed_at) list all folders first, by name,
-- then the files by the column. limits (default 100) is capped at 1500; offsets skips entries.
-- Errors: ST006 for an invalid bucket id, ST012 for an unknown sort column or order.
create or replace function storage.object_list(
  bucket_id text,
  prefix text,
  limits integer default 100,
  offsets integer default 0,
  search text default '',
  sort_column text default 'name',
  sort_order text default 'asc'
) returns table (name text, id uuid, updated_at timestamptz, created_at timestamptz,
                 last_accessed_at timestamptz, metadata jsonb)
  language plpgsql stable
  -- A page by name must come off the list index in order. When the statistics say the bucket
  -- is tiny (analyzed before it filled up), the planner otherwise prefers reading the whole
  -- bucket by the name index and sorting it: milliseconds per page instead of a hundred rows.
  set enable_sort = off
  -- The by-name statements are planned once per connection. Left to choose, PostgreSQL
  -- keeps re-planning them on every call once the bucket has statistics, which cost half
  -- again as much as the page itself (0.44 instead of 0.29 ms per page of 100).
  set plan_cache_mode = force_generic_plan
  -- Never compile: a disabled sort makes a plan look expensive enough for JIT, whose ~140 ms
  -- of compiling dwarfs any page.
  set jit = off
  as $$
#variable_conflict use_column
declare
  _prefix text := coalesce(object_list.prefix, '');
  _search text := coalesce(object_list.search, '');
  _col text := lower(coalesce(object_list.sort_column, 'name'));
  _asc boolean := lower(coalesce(object_list.sort_order, 'asc')) = 'asc';
  _want int := least(greatest(coalesce(object_list.limits, 100), 0), 1500);
  _skip int := greatest(coalesce(object_list.offsets, 0), 0);
  _eff text;
  _plen int;
  _slen int;
  _cur text;
  _slash int;
  _folder text;
  _seen int := 0;
  _restart boolean;
  _scan refcursor;
  _run int;
  _ceff text;
  o storage.objects;
begin
  perform storage_internal.bucket_id_check(object_list.bucket_id);
  if _col not in ('name', 'updated_at', 'created_at', 'last_accessed_at') then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter sortBy.column';
  end if;
  if lower(coalesce(object_list.sort_order, 'asc')) not in ('asc', 'desc') then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter sortBy.order';
  end if;
  if _prefix <> '' and right(_prefix, 1) <> '/' then
    _prefix := _prefix || '/';
  end if;
  _eff := lower(_prefix || _search);
  _plen := length(_prefix);
  _slen := length(_search);

  if _col <> 'name' then
    -- Folders first, by name in the requested direction, then the files at this depth by the
    -- column (name breaking ties). This reads and sorts every key under the prefix, so it is
    -- planned the usual way, with sorts, for the parameters at hand (until the function
    -- returns: its SET clauses scope these).
    perform set_config('enable_sort', 'on', true), set_config('plan_cache_mode', 'auto', true);
    return query
      with entries as (
        select distinct on (lower(left(substr(x.name, _plen + 1), _slen + position('/' in substr(x.name, _plen + _slen + 1)) - 1)))
               left(substr(x.name, _plen + 1), _slen + position('/' in substr(x.name, _plen + _slen + 1)) - 1) as fname
        from storage.objects x
        where x.bucket_id = object_list.bucket_id
          and starts_with(lower(x.name), _eff)
          and position('/' in substr(x.name, _plen + _slen + 1)) > 0
        order by lower(left(substr(x.name, _plen + 1), _slen + position('/' in substr(x.name, _plen + _slen + 1)) - 1))
      ), folders as (
        select e.fname, row_number() over (order by
                 case when _asc then lower(e.fname) collate "C" end asc,
                 case when not _asc then lower(e.fname) collate "C" end desc) as rn
        from entries e
      ), files as (
        select x.*, row_number() over (order by
                 case when _asc then (case _col when 'updated_at' then x.updated_at when 'created_at' then x.created_at else x.last_accessed_at end) end asc,
                 case when not _asc then (case _col when 'updated_at' then x.updated_at when 'created_at' then x.created_at else x.last_accessed_at end) end desc,
                 lower(x.name) collate "C", x.name collate "C") as rn
        from storage.objects x
        where x.bucket_id = object_list.bucket_id
          and starts_with(lower(x.name), _eff)
          and position('/' in substr(x.name, _plen + _slen + 1)) = 0
      )
      select u.name, u.id, u.updated_at, u.created_at, u.last_accessed_at, u.metadata
      from (
        select f.fname as name, null::uuid as id, null::timestamptz as updated_at, null::timestamptz as created_at,
               null::timestamptz as last_accessed_at, null::jsonb as metadata, 0 as part, f.rn
        from folders f
        union all
        select substr(x.name, _plen + 1), x.id, x.updated_at, x.created_at, x.last_accessed_at, x.metadata, 1, x.rn
        from files x
      ) u
      order by u.part, u.rn
      limit _want offset _skip;
    return;
  end if;

  -- By name: walk the index on translate(lower(name), '/', '\x01'). Mapping '/' below every
  -- other character makes a folder's keys sort right where its name does ("a" before
  -- "a.txt"), so folders and files interleave by name as the reference orders them. Files are
  -- read in one ordered scan (a page of files costs one statement, not one per file); a folder
  -- is emitted once, then the scan restarts just past it (its keys all start with
  -- name || '\x01', so name || '\x02' is past them): one restart per folder on the page. Names
  -- equal but for case come together, ordered bytewise.
  _cur := case when _asc then translate(_eff, '/', E'\x01') else translate(_eff, '/', E'\x01') || chr(1114111) end;

  -- The page's leading run of files (all of it in a folder without subfolders) in one
  -- statement: the scan's rows are counted, and cut at the first that is not a file of this
  -- folder (past the prefix, or a subfolder's key: one with '\x01' after the prefix and
  -- search). The walk below goes on from there.
  _ceff := translate(_eff, '/', E'\x01');
  if _asc then
    return query
      select substr(r.name, _plen + 1), r.id, r.updated_at, r.created_at, r.last_accessed_at, r.metadata
      from (
        select s.*, count(*) filter (where not (starts_with(s.k, _ceff) and strpos(substr(s.k, _plen + _slen + 1), E'\x01') = 0)) over w as stops, row_number() over w as n
        from (
          select x.name, x.id, x.updated_at, x.created_at, x.last_accessed_at, x.metadata,
                 translate(lower(x.name), '/', E'\x01') collate "C" as k
          from storage.objects x
          where x.bucket_id = object_list.bucket_id
            and translate(lower(x.name), '/', E'\x01') collate "C" >= _cur
          order by translate(lower(x.name), '/', E'\x01') collate "C", x.name collate "C"
          limit _skip + _want
        ) s
        window w as (order by s.k, s.name collate "C" rows between unbounded preceding and current row)
      ) r
      where r.stops = 0 and r.n > _skip;
  else
    return query
      select substr(r.name, _plen + 1), r.id, r.updated_at, r.created_at, r.last_accessed_at, r.metadata
      from (
        select s.*, count(*) filter (where not (starts_with(s.k, _ceff) and strpos(substr(s.k, _plen + _slen + 1), E'\x01') = 0)) over w as stops, row_number() over w as n
        from (
          select x.name, x.id, x.updated_at, x.created_at, x.last_accessed_at, x.metadata,
                 translate(lower(x.name), '/', E'\x01') collate "C" as k
          from storage.objects x
          where x.bucket_id = object_list.bucket_id
            and translate(lower(x.name), '/', E'\x01') collate "C" < _cur
          order by translate(lower(x.name), '/', E'\x01') collate "C" desc, x.name collate "C" desc
          limit _skip + _want
        ) s
        window w as (order by s.k desc, s.name collate "C" desc rows between unbounded preceding and current row)
      ) r
      where r.stops = 0 and r.n > _skip;
  end if;
  get diagnostics _run = row_count;
  if _run >= _want then
    return;
  end if;
  -- The run's length: what it returned plus the skipped entries. When it returned nothing
  -- after an offset, its length is unknown and the walk starts over.
  _run := case when _run > 0 then _run + _skip else 0 end;
  _seen := _run;

  <<walk>>
  loop
    _restart := false;
    if _asc then
      open _scan for
        select x.* from storage.objects x
        where x.bucket_id = object_list.bucket_id
          and translate(lower(x.name), '/', E'\x01') collate "C" >= _cur
        order by translate(lower(x.name), '/', E'\x01') collate "C", x.name collate "C"
        offset _run limit _skip + _want - _seen;
    else
      open _scan for
        select x.* from storage.objects x
        where x.bucket_id = object_list.bucket_id
          and translate(lower(x.name), '/', E'\x01') collate "C" < _cur
        order by translate(lower(x.name), '/', E'\x01') collate "C" desc, x.name collate "C" desc
        offset _run limit _skip + _want - _seen;
    end if;
    _run := 0;
    loop
      fetch _scan into o;
      exit walk when not found or not starts_with(lower(o.name), _eff);
      _slash := position('/' in substr(o.name, _plen + _slen + 1));
      if _slash > 0 then
        _folder := left(substr(o.name, _plen + 1), _slen + _slash - 1);
        _cur := translate(lower(_prefix || _folder), '/', E'\x01') || case when _asc then E'\x02' else E'\x01' end;
        _restart := true;
        name := _folder; id := null; updated_at := null; created_at := null;
        last_accessed_at := null; metadata := null;
      else
        name := substr(o.name, _plen + 1); id := o.id; updated_at := o.updated_at;
        created_at := o.created_at; last_accessed_at := o.last_accessed_at; metadata := o.metadata;
      end if;
      if _seen >= _skip then
        return next;
      end if;
      _seen := _seen + 1;
      exit walk when _seen >= _skip + _want;
      exit when _restart;
    end loop;
    close _scan;
  end loop;
  close _scan;
end
$$;

-- storage.object_list_v2(bucket_id, prefix, limits, start_after, with_delimiter, sort_column,
--                        sort_order, start_after_time)
--   → table(key, name, id, updated_at, created_at, last_accessed_at, metadata)
-- List v2 (storage-js listV2): up to limits (default 1000, at most 10000; the REST route pages
-- by at most 1000) entries after the
-- position start_after (the last name of the previous page; with a time sort also
-- start_after_time, its timestamp), as the calling role sees them (RLS SELECT). The prefix is
-- a raw, case-sensitive string prefix ('%' and '_' literal).
--   Without with_delimiter: every object under the prefix at any depth (key NULL).
--   With with_delimiter: the immediate children only — objects and folders, key = the path
--   segment at the prefix's depth (prefix 'aal' lists 'aal.txt' and folder 'aal/' with keys
--   'aal.txt' and 'aal'); a folder's name is its full path ending in '/',
--   id and metadata NULL; timestamps NULL when sorting by name, else the earliest
--   created_at beneath).
-- sort_column 'name' (bytewise; the default), 'updated_at' or 'created_at' (then name);
-- sort_order 'asc' or 'desc'. Name-sorted pages walk the index; folders are skipped over.
-- Errors: ST006 for an invalid bucket id, ST012 for an unknown sort column or order.
create or replace function storage.object_list_v2(
  bucket_id text,
  prefix text default '',
  limits integer default 1000,
  start_after text default null,
  with_delimiter boolean default false,
  sort_column text default 'name',
  sort_order text default 'asc',
  start_after_time timestamptz default null
) returns table (key text, name text, id uuid, updated_at timestamptz, created_at timestamptz,
                 last_accessed_at timestamptz, metadata jsonb)
  language plpgsql stable
  as $$
#variable_conflict use_column
declare
  _p text := coalesce(object_list_v2.prefix, '');
  _upper text := storage_internal.prefix_successor(coalesce(object_list_v2.prefix, ''));
  _col text := lower(coalesce(object_list_v2.sort_column, 'name'));
  _asc boolean := lower(coalesce(object_list_v2.sort_order, 'asc')) = 'asc';
  _want int := least(greatest(coalesce(object_list_v2.limits, 1000), 0), 10000);
  _after text := object_list_v2.start_after;
  _plen int := length(coalesce(object_list_v2.prefix, ''));
  _cur text;
  _slash int;
  _seg text;
  _n int := 0;
  _depth int := length(coalesce(object_list_v2.prefix, '')) - length(replace(coalesce(object_list_v2.prefix, ''), '/', ''));
  o storage.objects;
begin
  perform storage_internal.bucket_id_check(object_list_v2.bucket_id);
  if _col not in ('name', 'updated_at', 'created_at') then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter sortBy.column';
  end if;
  if lower(coalesce(object_list_v2.sort_order, 'asc')) not in ('asc', 'desc') then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter sortBy.order';
  end if;

  if _col <> 'name' then
    -- Time order: entries (objects, and with the delimiter folders stamped with their
    -- earliest created_at) sorted by (timestamp, name), keyset after the cursor.
    return query
      with entries as (
        select case when object_list_v2.with_delimiter then split_part(x.name, '/', _depth + 1) end as key,
               x.name, x.id, x.updated_at, x.created_at, x.last_accessed_at, x.metadata,
               case _col when 'updated_at' then x.updated_at else x.created_at end as ts
        from storage.objects x
        where x.bucket_id = object_list_v2.bucket_id and starts_with(x.name, _p)
          and (not object_list_v2.with_delimiter or position('/' in substr(x.name, _plen + 1)) = 0)
        union all
        select split_part(x.name, '/', _depth + 1),
               _p || split_part(substr(x.name, _plen + 1), '/', 1) || '/',
               null, min(x.created_at), min(x.created_at), null, null, min(x.created_at)
        from storage.objects x
        where object_list_v2.with_delimiter
          and x.bucket_id = object_list_v2.bucket_id and starts_with(x.name, _p)
          and position('/' in substr(x.name, _plen + 1)) > 0
        group by split_part(substr(x.name, _plen + 1), '/', 1), split_part(x.name, '/', _depth + 1)
      )
      select e.key, e.name, e.id, e.updated_at, e.created_at, e.last_accessed_at, e.metadata
      from entries e
      where _after is null
         or (_asc and (date_trunc('milliseconds', e.ts), e.name collate "C") > (date_trunc('milliseconds', object_list_v2.start_after_time), _after collate "C"))
         or (not _asc and (date_trunc('milliseconds', e.ts), e.name collate "C") < (date_trunc('milliseconds', object_list_v2.start_after_time), _after collate "C"))
      order by
        case when _asc then date_trunc('milliseconds', e.ts) end asc,
        case when _asc then e.name collate "C" end asc,
        case when not _asc then date_trunc('milliseconds', e.ts) end desc,
        case when not _asc then e.name collate "C" end desc
      limit _want;
    return;
  end if;

  if not coalesce(object_list_v2.with_delimiter, false) then
    -- Every key under the prefix: one index range scan.
    return query
      select null::text, x.name, x.id, x.updated_at, x.created_at, x.last_accessed_at, x.metadata
      from storage.objects x
      where x.bucket_id = object_list_v2.bucket_id
        and x.name collate "C" >= _p and (_upper is null or x.name collate "C" < _upper)
        and (_after is null or (_asc and x.name collate "C" > _after) or (not _asc and x.name collate "C" < _after))
      order by case when _asc then x.name collate "C" end asc, case when not _asc then x.name collate "C" end desc
      limit _want;
    return;
  end if;

  -- Immediate children by name: one index probe per entry, skipping over folders ('0' is the
  -- character after '/'). A folder cursor ends in '/'.
  if _asc then
    _cur := case when _after is null then _p
                 when right(_after, 1) = '/' then left(_after, -1) || '0'
                 else _after || E'\x01' end;
  else
    _cur := case when _after is null then coalesce(_upper, chr(1114111)) else _after end;
  end if;
  while _n < _want loop
    if _asc then
      select x.* into o from storage.objects x
      where x.bucket_id = object_list_v2.bucket_id and x.name collate "C" >= _cur
        and (_upper is null or x.name collate "C" < _upper)
      order by x.name collate "C" limit 1;
    else
      select x.* into o from storage.objects x
      where x.bucket_id = object_list_v2.bucket_id and x.name collate "C" < _cur
        and x.name collate "C" >= _p
      order by x.name collate "C" desc limit 1;
    end if;
    exit when not found;
    _slash := position('/' in substr(o.name, _plen + 1));
    if _slash > 0 then
      _seg := left(substr(o.name, _plen + 1), _slash - 1);
      _cur := case when _asc then _p || _seg || '0' else _p || _seg || '/' end;
      key := split_part(o.name, '/', _depth + 1); name := _p || _seg || '/'; id := null; updated_at := null; created_at := null;
      last_accessed_at := null; metadata := null;
    else
      _cur := case when _asc then o.name || E'\x01' else o.name end;
      key := split_part(o.name, '/', _depth + 1); name := o.name; id := o.id; updated_at := o.updated_at;
      created_at := o.created_at; last_accessed_at := o.last_accessed_at; metadata := o.metadata;
    end if;
    return next;
    _n := _n + 1;
  end loop;
end
$$;

revoke all on function storage_internal.prefix_successor(text) from public;
grant execute on function storage_internal.prefix_successor(text) to anon, authenticated, service_role;
comment on function storage_internal.prefix_successor(text) is
  'Internal: the smallest string greater than every string starting with the prefix (NULL for '''').';
comment on function storage.object_list(text, text, integer, integer, text, text, text) is
  'List v1: the files and folders directly under a prefix that the caller may see (RLS: SELECT policy), case-insensitive, by name or a timestamp, paged (at most 1500). Raises ST006 bad bucket id, ST012 bad sort.';
comment on function storage.object_list_v2(text, text, integer, text, boolean, text, text, timestamptz) is
  'List v2: objects under a raw prefix that the caller may see (RLS: SELECT policy), optionally folded into folders at the prefix''s depth, by name or a timestamp, after a cursor (at most 10000). Raises ST006 bad bucket id, ST012 bad sort.';
