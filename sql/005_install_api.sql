-- 005 install api: the bucket API of sql/api, frozen in sql/snapshots/005 (bucket_create, _get,
-- _list, _update, _delete, _empty and their validation helpers, all in schema storage).
-- Up installs the snapshot (CREATE OR REPLACE throughout); down drops those functions.
-- No table locks.
{{ install_snapshot "005" }}

---- create above / drop below ----

drop function storage.bucket_empty(text);
drop function storage.bucket_delete(text);
drop function storage.bucket_update(text, boolean, text, text[], boolean, boolean);
drop function storage.bucket_list(integer, integer, text, text, text);
drop function storage.bucket_get(text);
drop function storage.bucket_create(text, text, boolean, text, text[], text);
drop function storage.bucket_object_count(text, bigint, boolean);
drop function storage.mime_types_check(text[]);
drop function storage.bucket_size_limit_check(bigint);
drop function storage.size_parse(text);
drop function storage.bucket_name_check(text);
