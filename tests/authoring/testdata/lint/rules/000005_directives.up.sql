-- schemahook:lint-ignore drop-column
-- schemahook:lint-ignore no-such-rule because reasons
SELECT 1;
