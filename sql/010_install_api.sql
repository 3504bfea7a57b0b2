-- 010 install api: the SQL API of sql/api frozen in sql/snapshots/010. New since 009:
-- lookups by (bucket_id, name) compare name COLLATE "C", so they use the unique index on any
-- database (in a database whose default collation is not C they read the whole bucket);
-- object_list walks a page of files in one ordered scan instead of one statement per entry;
-- object_write_check skips the policy dry-run for callers RLS does not apply to (it keeps
-- the duplicate check); the SECURITY DEFINER helpers on request paths (object_public_lookup,
-- object_exists, blob_upload_begin, object_share_lock) are PL/pgSQL, whose plans are cached
-- (a SQL function is planned on every call); mime_type_allowed is an expression PostgreSQL
-- inlines; hmac_sha256 pads its key in one statement. Every statement is CREATE OR REPLACE;
-- down reinstalls 009. No table locks.
{{ install_snapshot "010" }}

---- create above / drop below ----

{{ install_snapshot "009" }}
