-- The trailing comma is a syntax error.
CREATE TABLE broken (
    id int,
);
