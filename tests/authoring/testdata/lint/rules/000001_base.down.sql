DROP TABLE old_things;
DROP TABLE projects;
DROP TABLE accounts;
