-- Tables created here are new: nothing in this file is flagged.
CREATE TABLE accounts (
    id     bigint PRIMARY KEY,
    email  text,
    name   text NOT NULL,
    age    integer,
    legacy text
);
CREATE TABLE projects (
    id       bigint PRIMARY KEY,
    owner_id bigint,
    title    text NOT NULL
);
CREATE INDEX projects_title_idx ON projects (title);
ALTER TABLE projects ADD CONSTRAINT projects_owner_fk FOREIGN KEY (owner_id) REFERENCES accounts (id);
CREATE TABLE old_things (id int);
