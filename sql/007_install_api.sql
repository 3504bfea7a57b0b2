-- 007 install api: the SQL API of sql/api, frozen in sql/snapshots/007: buckets
-- (bucket_create, _get, _list, _update, _delete, _empty), objects (object_info, object_delete,
-- object_delete_many, object_move, object_copy, the upload's prepare/commit/abort), listing
-- (object_list, object_list_v2), URL signing (url_sign, url_sign_many, url_sign_upload) and
-- their helpers, all in schema storage. Up installs the snapshot (CREATE OR REPLACE
-- throughout); down drops them. No table locks.
{{ install_snapshot "007" }}

---- create above / drop below ----

drop function storage.object_copy(text, text, text, text, boolean, boolean, jsonb, jsonb);
drop function storage.object_move(text, text, text, text);
drop function storage.object_share_lock(uuid);
drop function storage.object_dest_check(text, text, bigint, text);
drop function storage.object_list_v2(text, text, integer, text, boolean, text, text, timestamptz);
drop function storage.object_list(text, text, integer, integer, text, text, text);
drop function storage.prefix_successor(text);
drop function storage.url_sign_upload(text, text, boolean, bigint);
drop function storage.url_sign_many(text, text[], bigint);
drop function storage.url_sign(text, text, bigint);
drop function storage.url_expiry(bigint);
drop function storage.signing_secret_set(text);
drop function storage.url_token(jsonb);
drop function storage.base64url(bytea);
drop function storage.hmac_sha256(bytea, bytea);
drop function storage.object_delete_many(text, text[]);
drop function storage.object_exists(text, text);
drop function storage.object_delete(text, text);
drop function storage.object_info(text, text, boolean);
drop function storage.object_upload_commit(text, text, text, boolean, text, bigint, text, text, text, jsonb, text);
drop function storage.object_upload_prepare(text, text, boolean, text, bigint, jsonb);
drop function storage.object_write_check(text, text, boolean, text, bigint, jsonb);
drop function storage.object_upload_abort(text);
drop function storage.blob_upload_begin(text, text);
drop function storage.object_public_lookup(text, text);
drop function storage.bucket_lookup(text);
drop function storage.mime_type_allowed(text, text[]);
drop function storage.object_name_check(text);
drop function storage.bucket_empty(text);
drop function storage.bucket_delete(text);
drop function storage.bucket_update(text, boolean, text, text[], boolean, boolean);
drop function storage.bucket_list(integer, integer, text, text, text);
drop function storage.bucket_get(text);
drop function storage.bucket_create(text, text, boolean, text, text[], text);
drop function storage.bucket_object_count(text, bigint, boolean);
drop function storage.uuid_or_null(text);
drop function storage.mime_types_check(text[]);
drop function storage.bucket_size_limit_check(bigint);
drop function storage.size_parse(text);
drop function storage.bucket_id_check(text);
drop function storage.bucket_name_check(text);
