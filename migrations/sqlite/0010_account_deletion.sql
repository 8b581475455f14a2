-- When the account's owner asked for its deletion (Unix ms). The deletion job deletes the
-- account once the grace period after it has passed; signing in and choosing to keep the
-- account clears it.
ALTER TABLE users ADD COLUMN deletion_requested_at BIGINT;
