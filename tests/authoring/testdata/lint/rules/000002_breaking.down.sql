-- Down files undo what their up file did: dropping what it added is expected here.
ALTER TABLE accounts ALTER COLUMN email DROP NOT NULL;
ALTER TABLE accounts DROP COLUMN tier;
ALTER TABLE accounts DROP COLUMN plan;
ALTER TABLE accounts ALTER COLUMN age TYPE integer;
ALTER TABLE workspaces RENAME TO projects;
ALTER TABLE accounts RENAME COLUMN full_name TO name;
CREATE TABLE old_things (id int);
ALTER TABLE accounts ADD COLUMN legacy text;
