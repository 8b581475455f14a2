-- Throttles count attempts (sign-in, second factor, sign-up, password reset) per subject: a
-- keyed hash of an email, an IP network or an account, never the value itself. One row per
-- subject, read and written by a single upsert, so parallel attempts cannot all see the old
-- count as they could with one row per failure.
DROP TABLE login_failures;

CREATE TABLE throttles (
    subject_hash TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    attempts BIGINT NOT NULL
);
CREATE INDEX throttles_window_start ON throttles (window_start);

-- When a session last proved its owner with a password, a passkey or a second factor.
-- Adding a sign-in factor needs a recent proof; a session opened by an emailed link has none.
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT;

-- When the password was last set. A password reset pauses the passkeys added since, which
-- an intruder with a stolen session may have added.
ALTER TABLE users ADD COLUMN password_set_at BIGINT;
UPDATE users SET password_set_at = created_at;

-- Set while a passkey is paused after a password reset: it signs in to nothing until its
-- owner confirms it on the account page.
ALTER TABLE passkeys ADD COLUMN paused_at BIGINT;
