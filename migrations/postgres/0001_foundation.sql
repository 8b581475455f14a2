-- Projects, edge telemetry, monthly usage and siteverify state.
-- Numbers are BIGINT and flags INTEGER 0/1 so one set of runtime queries serves SQLite and
-- PostgreSQL through sqlx's Any driver; timestamps are Unix milliseconds.

CREATE TABLE projects (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    site_key                TEXT NOT NULL UNIQUE,
    secret_hash             TEXT NOT NULL UNIQUE,
    active                  BIGINT NOT NULL DEFAULT 1,
    production_domains      TEXT NOT NULL DEFAULT '[]',
    testing_domains         TEXT NOT NULL DEFAULT '[]',
    allow_subdomains        BIGINT NOT NULL DEFAULT 0,
    key_version             BIGINT NOT NULL DEFAULT 1,
    preset                  TEXT NOT NULL DEFAULT 'balanced',
    custom_difficulty       BIGINT,
    custom_challenge_count  BIGINT,
    risk_mode               TEXT NOT NULL DEFAULT 'observe',
    plan                    TEXT NOT NULL DEFAULT 'free',
    billing_status          TEXT NOT NULL DEFAULT 'active',
    monthly_limit           BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);

-- One row per edge event, keyed by the event's own random id so redelivery is a no-op.
CREATE TABLE telemetry_events (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    reason        TEXT,
    at            BIGINT NOT NULL,
    challenge_id  TEXT,
    hostname      TEXT,
    difficulty    BIGINT,
    ip_hash       TEXT,
    ua_hash       TEXT,
    received_at   BIGINT NOT NULL
);
CREATE INDEX telemetry_events_project_at ON telemetry_events (project_id, at);

-- Counters per project and calendar month (UTC), bumped only by newly stored events.
CREATE TABLE usage_months (
    project_id          TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    month               TEXT NOT NULL,
    protected_attempts  BIGINT NOT NULL DEFAULT 0,
    challenges_issued   BIGINT NOT NULL DEFAULT 0,
    refusals            BIGINT NOT NULL DEFAULT 0,
    verifications       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, month)
);

-- A verification token is accepted once; the stored answer serves idempotent retries.
CREATE TABLE siteverify_claims (
    token_id         TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    idempotency_key  TEXT,
    response         TEXT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX siteverify_claims_expires_at ON siteverify_claims (expires_at);

-- Verification analytics: what site backends asked, never counted as protected attempts.
CREATE TABLE verification_events (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    success     BIGINT NOT NULL,
    error_code  TEXT
);
CREATE INDEX verification_events_project_at ON verification_events (project_id, at);
