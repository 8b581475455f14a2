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
