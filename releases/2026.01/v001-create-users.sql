-- The users of the hello app.

-- @add
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    full_name TEXT,
    email TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);
INSERT INTO users (full_name, email) VALUES
    ('Ada Lovelace', 'ada@example.org'),
    ('Alan Turing', 'alan@example.org');

-- @rollback_add
DROP TABLE users;

-- @simdrop
-- Nothing to hide: this version only adds.

-- @rollback_simdrop
-- Nothing was hidden.

-- @drop
-- Nothing to drop.
