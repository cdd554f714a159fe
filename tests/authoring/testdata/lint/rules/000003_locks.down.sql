DROP INDEX accounts_name_idx;
DROP TABLE tags;
DROP INDEX workspaces_owner_idx;
ALTER TABLE workspaces DROP CONSTRAINT workspaces_title_check;
ALTER TABLE workspaces DROP CONSTRAINT workspaces_owner_fk2;
DROP INDEX accounts_email_idx;
