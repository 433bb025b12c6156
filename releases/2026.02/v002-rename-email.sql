-- Rename users.email to email_address without downtime: both columns live
-- side by side, kept equal by triggers, until old code is gone.

-- @add
ALTER TABLE users ADD COLUMN email_address TEXT;
UPDATE users SET email_address = email;
CREATE UNIQUE INDEX users_email_address ON users (email_address);
CREATE TRIGGER users_email_sync_insert AFTER INSERT ON users
WHEN NEW.email_address IS NULL
BEGIN
    UPDATE users SET email_address = NEW.email WHERE id = NEW.id;
END;
CREATE TRIGGER users_email_sync_update AFTER UPDATE OF email ON users
BEGIN
    UPDATE users SET email_address = NEW.email WHERE id = NEW.id;
END;

-- @rollback_add
DROP TRIGGER users_email_sync_update;
DROP TRIGGER users_email_sync_insert;
DROP INDEX users_email_address;
ALTER TABLE users DROP COLUMN email_address;

-- @simdrop
DROP TRIGGER users_email_sync_update;
DROP TRIGGER users_email_sync_insert;
DROP INDEX users_email;
ALTER TABLE users RENAME COLUMN email TO _simdropped_email;

-- @rollback_simdrop
ALTER TABLE users RENAME COLUMN _simdropped_email TO email;
CREATE UNIQUE INDEX users_email ON users (email);
CREATE TRIGGER users_email_sync_insert AFTER INSERT ON users
WHEN NEW.email_address IS NULL
BEGIN
    UPDATE users SET email_address = NEW.email WHERE id = NEW.id;
END;
CREATE TRIGGER users_email_sync_update AFTER UPDATE OF email ON users
BEGIN
    UPDATE users SET email_address = NEW.email WHERE id = NEW.id;
END;

-- @drop
ALTER TABLE users DROP COLUMN _simdropped_email;
