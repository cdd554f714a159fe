-- 000005 as first written: an audit log seeded with one row. The INSERT has a typo in the table
-- name, so the migration fails at line 8 (SQLSTATE 42P01) after its CREATE TABLE has run; the
-- transaction must take the CREATE TABLE back with it.
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message text NOT NULL
);
INSERT INTO audit_logs (message) VALUES ('schema version 5');
