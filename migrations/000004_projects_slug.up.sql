-- Expand step: add the column nullable so the release still serving keeps working, backfill it,
-- then enforce the format with a constraint that is validated without a long exclusive lock.
ALTER TABLE projects ADD COLUMN slug text;

UPDATE projects
SET slug = trim(both '-' from regexp_replace(lower(title), '[^a-z0-9]+', '-', 'g'))
WHERE slug IS NULL;

ALTER TABLE projects
    ADD CONSTRAINT projects_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$') NOT VALID;
ALTER TABLE projects VALIDATE CONSTRAINT projects_slug_format;
