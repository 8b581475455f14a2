-- Billing belongs to the organisation: its plan and whether its traffic is paid for. An
-- organisation without a row is on the free plan, active. (The `plan` and `billing_status`
-- columns of `projects` now only apply to projects an operator created without an
-- organisation.)
CREATE TABLE organisation_billing (
    organisation_id      TEXT PRIMARY KEY REFERENCES organisations (id) ON DELETE CASCADE,
    plan                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    -- When a payment first failed; traffic continues for the grace period after it.
    past_due_since       BIGINT,
    updated_at           BIGINT NOT NULL
);
