-- Orders placed by users.

-- @add
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    total_cents INTEGER NOT NULL DEFAULT 0,
    placed_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX orders_user_id ON orders (user_id);

-- @rollback_add
DROP TABLE orders;

-- @simdrop
-- Nothing to hide: this version only adds.

-- @rollback_simdrop
-- Nothing was hidden.

-- @drop
-- Nothing to drop.
