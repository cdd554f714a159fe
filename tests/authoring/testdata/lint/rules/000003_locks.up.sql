CREATE INDEX accounts_email_idx ON accounts (email);
ALTER TABLE workspaces ADD CONSTRAINT workspaces_owner_fk2 FOREIGN KEY (owner_id) REFERENCES accounts (id);
ALTER TABLE workspaces ADD CONSTRAINT workspaces_title_check CHECK (title <> '') NOT VALID;
ALTER TABLE workspaces VALIDATE CONSTRAINT workspaces_title_check;
CREATE INDEX CONCURRENTLY workspaces_owner_idx ON workspaces (owner_id);

CREATE TABLE tags (id int, label text);
CREATE INDEX tags_label_idx ON tags (label);

-- Small table, checked in every environment:
-- schemahook:lint-ignore create-index-not-concurrently accounts has under 100 rows in every environment
CREATE INDEX accounts_name_idx ON accounts (full_name);
UPDATE accounts SET full_name = name;
