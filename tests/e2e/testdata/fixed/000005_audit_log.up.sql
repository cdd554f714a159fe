-- 000005 fixed: the same migration with the table name corrected. It was never applied (the
-- failed attempt left version 4, clean), so it may change freely.
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message text NOT NULL
);
INSERT INTO audit_log (message) VALUES ('schema version 5');
