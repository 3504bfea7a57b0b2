-- 017 render sign: storage.url_sign gains transformations and format (default NULL), for
-- POST /object/sign with a transform: a non-empty transformations string makes the URL
-- /render/image/sign/… and goes into the token with the format, as the reference mints them.
-- The three-argument function is replaced (a call with three arguments still resolves).
-- Reversible. No table locks.

drop function storage.url_sign(text, text, bigint);
{{ install_snapshot "017" }}

---- create above / drop below ----

drop function storage.url_sign(text, text, bigint, text, text);
{{ install_snapshot "016" }}
