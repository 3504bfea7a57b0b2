-- storage.object_delete_prefix(bucket_id, prefix, max_count) → bigint
-- Deletes every object of bucket_id under the folder prefix (a prefix not ending in '/' gets one:
-- 'photos' removes 'photos/…', never 'photos2') that the calling role may delete (RLS: DELETE
-- and SELECT policies), and returns how many it deleted. Works in batches of 1000 rows in name
-- order through the (bucket_id, name) index, so memory and each statement stay bounded and
-- only the rows being deleted are locked (no table or advisory locks). max_count, when given,
-- stops after that many deletions: calling it in a loop until it returns 0, one transaction
-- per call, keeps every transaction short however large the folder. Blobs are queued by the
-- objects_free_blobs trigger.
-- Errors: ST006 invalid bucket id, ST001 missing or hidden bucket, ST012 empty prefix or a
-- negative max_count.
create or replace function storage.object_delete_prefix(bucket_id text, prefix text, max_count bigint default null)
  returns bigint
  language plpgsql
  as $$
declare
  batch_size constant int := 1000;
  _prefix text := object_delete_prefix.prefix;
  _upper text;
  _after text;
  _want int;
  _seen int;
  _deleted int;
  _last text;
  _total bigint := 0;
begin
  perform storage_internal.bucket_id_check(object_delete_prefix.bucket_id);
  if _prefix is null or _prefix = '' or _prefix = '/' then
    raise exception using errcode = 'ST012', message = 'prefix must name a folder (use storage.bucket_empty for a whole bucket)';
  end if;
  if max_count < 0 then
    raise exception using errcode = 'ST012', message = 'max_count must not be negative';
  end if;
  perform from storage.buckets b where b.id = object_delete_prefix.bucket_id;
  if not found then
    raise exception using errcode = 'ST001', message = 'Bucket not found';
  end if;
  if right(_prefix, 1) <> '/' then
    _prefix := _prefix || '/';
  end if;
  _upper := storage_internal.prefix_successor(_prefix);
  loop
    _want := least(batch_size, coalesce(max_count - _total, batch_size));
    exit when _want <= 0;
    with batch as (
      select o.id, o.name from storage.objects o
      where o.bucket_id = object_delete_prefix.bucket_id
        and o.name collate "C" >= _prefix and o.name collate "C" < _upper
        and (_after is null or o.name collate "C" > _after)
      order by o.name collate "C"
      limit _want
    ), gone as (
      delete from storage.objects o using batch where o.id = batch.id returning 1
    )
    select (select count(*) from batch), (select count(*) from gone),
           (select b.name from batch b order by b.name collate "C" desc limit 1)
    into _seen, _deleted, _last;
    _total := _total + _deleted;
    exit when _seen < _want;
    _after := _last;
  end loop;
  return _total;
end
$$;
comment on function storage.object_delete_prefix(text, text, bigint) is
  'Deletes, as the caller (RLS: DELETE and SELECT policies), every object under a folder, in batches of 1000, at most max_count; returns the count. Raises ST006 bad bucket id, ST001 missing or hidden bucket, ST012 empty prefix or negative max_count.';
