-- 012 install api: the SQL API of sql/api frozen in sql/snapshots/012. New since 011:
-- object_list plans its by-name statements once per connection (plan_cache_mode
-- force_generic_plan): with statistics PostgreSQL re-planned them on every call, half again
-- the cost of a page. It never JIT-compiles (jit off): the disabled sort made the
-- time-sorted listing look costly enough for ~140 ms of compiling per call. The time-sorted
-- listing plans with sorts and for its parameters again, as before 011.
-- object_upload_commit and object_upload_abort find their storage.blob_uploads entry by key
-- (enable_seqscan off, jit off): a vacuum leaves the queue empty, and the plan connections
-- cached then read the whole queue, dead entries and all, on every commit.
-- Every statement is CREATE OR REPLACE; down reinstalls 011. No table locks.
{{ install_snapshot "012" }}

---- create above / drop below ----

{{ install_snapshot "011" }}
