-- storage.bucket_list(limits, offsets, sort_column, sort_order, search) → setof storage.buckets
-- The buckets the calling role may see (RLS SELECT), optionally filtered by a case-insensitive
-- substring of the name (search: %, _ and \ match literally), ordered by sort_column ∈
-- id | name | created_at | updated_at (default name) in sort_order ∈ asc | desc (default asc),
-- then paged by limits (NULL = all) and offsets. Names and ids sort bytewise (COLLATE "C").
-- Errors: ST012 for an unknown sort column or order or a negative limit/offset.
create or replace function storage.bucket_list(
  limits integer default null,
  offsets integer default 0,
  sort_column text default 'name',
  sort_order text default 'asc',
  search text default ''
) returns setof storage.buckets
  language plpgsql stable
  as $$
#variable_conflict use_column
declare
  _col text := lower(coalesce(bucket_list.sort_column, 'name'));
  _asc boolean := lower(coalesce(bucket_list.sort_order, 'asc')) = 'asc';
  _pattern text;
begin
  if _col not in ('id', 'name', 'created_at', 'updated_at') then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter sort_column';
  end if;
  if lower(coalesce(bucket_list.sort_order, 'asc')) not in ('asc', 'desc') then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter sort_order';
  end if;
  if bucket_list.limits < 0 or bucket_list.offsets < 0 then
    raise exception using errcode = 'ST012', message = 'Invalid Parameter limit or offset';
  end if;
  if coalesce(bucket_list.search, '') <> '' then
    _pattern := '%' || replace(replace(replace(bucket_list.search, '\', '\\'), '%', '\%'), '_', '\_') || '%';
  end if;

  -- One static statement (its plan is cached) with the order picked by CASE.
  return query
    select b.*
    from storage.buckets b
    where _pattern is null or b.name ilike _pattern
    order by
      case when _col = 'id' and _asc then b.id collate "C" end asc,
      case when _col = 'id' and not _asc then b.id collate "C" end desc,
      case when _col = 'name' and _asc then b.name collate "C" end asc,
      case when _col = 'name' and not _asc then b.name collate "C" end desc,
      case when _col = 'created_at' and _asc then b.created_at end asc,
      case when _col = 'created_at' and not _asc then b.created_at end desc,
      case when _col = 'updated_at' and _asc then b.updated_at end asc,
      case when _col = 'updated_at' and not _asc then b.updated_at end desc,
      b.id collate "C"
    limit bucket_list.limits
    offset coalesce(bucket_list.offsets, 0);
end
$$;
comment on function storage.bucket_list(integer, integer, text, text, text) is
  'The buckets the caller may see (RLS: SELECT policy), filtered by a name substring, sorted by id, name, created_at or updated_at, paged. Raises ST012 bad sort or paging.';
