-- 011 install api: the SQL API of sql/api frozen in sql/snapshots/011. New since 010:
-- object_list (list v1, by name) returns the page's leading run of files in one statement,
-- cut at the first subfolder or the end of the prefix, and walks entry by entry only from
-- there: a page of a folder without subfolders is one statement and no per-row PL/pgSQL.
-- object_list runs with enable_sort off, so statistics that call a bucket tiny (taken before
-- it filled up) no longer make a page read and sort the whole bucket.
-- Every statement is CREATE OR REPLACE; down reinstalls 010. No table locks.
{{ install_snapshot "011" }}

---- create above / drop below ----

{{ install_snapshot "010" }}
