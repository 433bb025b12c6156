-- Split users.full_name into first_name/last_name without downtime:
-- add + backfill now, hide full_name once no code reads it, drop it later.

-- @add
ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
UPDATE users SET
    first_name = substr(full_name, 1, instr(full_name || ' ', ' ') - 1),
    last_name = nullif(substr(full_name, instr(full_name || ' ', ' ') + 1), '')
WHERE full_name IS NOT NULL;
-- Old code still writes full_name only: keep the new columns filled.
CREATE TRIGGER users_split_full_name AFTER INSERT ON users
WHEN NEW.first_name IS NULL AND NEW.full_name IS NOT NULL
BEGIN
    UPDATE users SET
        first_name = substr(NEW.full_name, 1, instr(NEW.full_name || ' ', ' ') - 1),
        last_name = CASE WHEN instr(NEW.full_name, ' ') > 0
                         THEN substr(NEW.full_name, instr(NEW.full_name, ' ') + 1) END
    WHERE id = NEW.id;
END;

-- @rollback_add
DROP TRIGGER users_split_full_name;
ALTER TABLE users DROP COLUMN last_name;
ALTER TABLE users DROP COLUMN first_name;

-- @simdrop
DROP TRIGGER users_split_full_name;
ALTER TABLE users RENAME COLUMN full_name TO _simdropped_full_name;

-- @rollback_simdrop
ALTER TABLE users RENAME COLUMN _simdropped_full_name TO full_name;
CREATE TRIGGER users_split_full_name AFTER INSERT ON users
WHEN NEW.first_name IS NULL AND NEW.full_name IS NOT NULL
BEGIN
    UPDATE users SET
        first_name = substr(NEW.full_name, 1, instr(NEW.full_name || ' ', ' ') - 1),
        last_name = CASE WHEN instr(NEW.full_name, ' ') > 0
                         THEN substr(NEW.full_name, instr(NEW.full_name, ' ') + 1) END
    WHERE id = NEW.id;
END;

-- @drop
ALTER TABLE users DROP COLUMN _simdropped_full_name;
