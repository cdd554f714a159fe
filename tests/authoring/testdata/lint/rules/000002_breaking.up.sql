-- Each statement breaks the release that still serves during pre-upgrade.
ALTER TABLE accounts DROP COLUMN legacy;
DROP TABLE old_things;
ALTER TABLE accounts RENAME COLUMN name TO full_name;
ALTER TABLE projects RENAME TO workspaces;
ALTER TABLE accounts ALTER COLUMN age TYPE bigint;
ALTER TABLE accounts ADD COLUMN plan text NOT NULL;
ALTER TABLE accounts ADD COLUMN tier text NOT NULL DEFAULT 'free';
ALTER TABLE accounts
    ALTER COLUMN email SET NOT NULL;
