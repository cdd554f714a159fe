-- Expand step: add the column nullable so the release still serving keeps working, backfill it,
-- then enforce the format with a CHECK added NOT VALID (no table scan under its lock) and
-- validated afterwards. In one transaction the ADD's lock is still held during VALIDATE's scan:
-- fine for this small table; on a large one, validate in a later migration.
ALTER TABLE projects ADD COLUMN slug text;

-- schemahook:lint-ignore dml-after-ddl example schema: projects is small, so the backfill keeps the ADD COLUMN's lock for milliseconds; a large table needs the backfill in a no-transaction file of its own, in batches
UPDATE projects
SET slug = trim(both '-' from regexp_replace(lower(title), '[^a-z0-9]+', '-', 'g'))
WHERE slug IS NULL;

ALTER TABLE projects
    ADD CONSTRAINT projects_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$') NOT VALID;
-- schemahook:lint-ignore constraint-not-valid example schema: in this one transaction the ADD above keeps its ACCESS EXCLUSIVE lock on projects while VALIDATE scans it; acceptable for the small example table, a large table needs VALIDATE in a later migration
ALTER TABLE projects VALIDATE CONSTRAINT projects_slug_format;
