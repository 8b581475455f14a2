-- Customers: users, their sessions and one-time email links, organisations and roles, API
-- keys, the audit log, and what the snapshot publisher still owes the edge.
-- Same conventions as 0001: BIGINT numbers, 0/1 flags, Unix-millisecond timestamps.

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    email              TEXT NOT NULL UNIQUE,
    password_hash      TEXT NOT NULL,
    email_verified_at  BIGINT,
    status             TEXT NOT NULL DEFAULT 'active',
    language           TEXT NOT NULL DEFAULT 'en',
    is_operator        BIGINT NOT NULL DEFAULT 0,
    -- TOTP: the secret encrypted with a key derived from the master secret; enabled once
    -- confirmed with a code; the last accepted time step, so a code works once.
    totp_secret        TEXT,
    totp_enabled_at    BIGINT,
    totp_last_step     BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- The cookie holds a random token; only its SHA-256 is stored. A session whose password
-- step passed but whose second factor is still due has `second_factor_due` = 1 and grants
-- nothing but the second-factor form.
CREATE TABLE sessions (
    token_hash         TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    second_factor_due  BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Email verification and password reset links: hashed, expiring, single use.
CREATE TABLE email_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_expires_at ON email_tokens (expires_at);

-- One-time recovery codes for a lost authenticator, stored hashed.
CREATE TABLE recovery_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- Passkeys (WebAuthn credentials): the credential as webauthn-rs serialises it, public key
-- and signature counter included; nothing secret.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    credential    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- The server half of a WebAuthn ceremony between its start and finish requests: single
-- use, five minutes.
CREATE TABLE webauthn_ceremonies (
    id          TEXT PRIMARY KEY,
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Failed sign-ins, keyed by a salted hash of the email or of the client IP.
CREATE TABLE login_failures (
    id            TEXT PRIMARY KEY,
    subject_hash  TEXT NOT NULL,
    at            BIGINT NOT NULL
);
CREATE INDEX login_failures_subject_at ON login_failures (subject_hash, at);

CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE memberships (
    organisation_id  TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Invitations by email: the link carries a random token, stored hashed; accepting needs an
-- account with the invited address.
CREATE TABLE invitations (
    token_hash       TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    role             TEXT NOT NULL,
    invited_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    accepted_at      BIGINT
);
CREATE INDEX invitations_organisation ON invitations (organisation_id);

-- An agency groups its projects under named clients.
CREATE TABLE clients (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX clients_organisation ON clients (organisation_id);

CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    key_hash         TEXT NOT NULL UNIQUE,
    prefix           TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    active           BIGINT NOT NULL DEFAULT 1,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT
);
CREATE INDEX api_keys_organisation ON api_keys (organisation_id);

CREATE TABLE audit_log (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT,
    actor            TEXT NOT NULL,
    action           TEXT NOT NULL,
    target           TEXT,
    at               BIGINT NOT NULL
);
CREATE INDEX audit_log_organisation_at ON audit_log (organisation_id, at);

-- Projects belong to an organisation (NULL: created by an operator from the CLI) and carry
-- the widget options the integration page shows. Every change bumps `revision`;
-- `published_revision` < `revision` means the edge has not seen the latest change yet.
ALTER TABLE projects ADD COLUMN organisation_id TEXT REFERENCES organisations (id) ON DELETE CASCADE;
ALTER TABLE projects ADD COLUMN client_id TEXT REFERENCES clients (id) ON DELETE SET NULL;
ALTER TABLE projects ADD COLUMN widget_variant TEXT NOT NULL DEFAULT 'checkbox';
ALTER TABLE projects ADD COLUMN widget_theme TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE projects ADD COLUMN widget_language TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE projects ADD COLUMN widget_size TEXT NOT NULL DEFAULT 'normal';
ALTER TABLE projects ADD COLUMN widget_branding TEXT NOT NULL DEFAULT 'full';
ALTER TABLE projects ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
ALTER TABLE projects ADD COLUMN published_revision BIGINT NOT NULL DEFAULT 0;
-- After a rotation the previous secret keeps working until it expires (the overlap window).
ALTER TABLE projects ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE projects ADD COLUMN previous_secret_expires_at BIGINT;
CREATE INDEX projects_organisation ON projects (organisation_id);

-- Site keys of deleted projects whose KV entries still have to be removed.
CREATE TABLE snapshot_deletions (
    site_key      TEXT PRIMARY KEY,
    requested_at  BIGINT NOT NULL
);
