-- schemahook:no-transaction
-- Built CONCURRENTLY so that writers to a populated accounts table are not blocked. PostgreSQL
-- refuses CREATE INDEX CONCURRENTLY inside a transaction, hence the directive above. If the
-- build fails it leaves an INVALID index behind; IF EXISTS in the down file and the DROP below
-- make a rerun after "schemahook force" safe.
DROP INDEX CONCURRENTLY IF EXISTS accounts_email_lower_key;
CREATE UNIQUE INDEX CONCURRENTLY accounts_email_lower_key ON accounts (lower(email));
