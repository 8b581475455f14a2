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
    -- When a hard-capped plan first used up its included attempts, and whether a member
    -- has dismissed the dashboard's banner about it.
    cap_reached_at       BIGINT,
    cap_banner_seen      BIGINT NOT NULL DEFAULT 0,
    -- The Stripe customer and subscription that pay for the plan, and what Stripe last said
    -- of them: the interval billed and when the current period ends (Unix seconds).
    stripe_customer_id      TEXT UNIQUE,
    stripe_subscription_id  TEXT,
    billing_interval        TEXT,
    current_period_end      BIGINT,
    updated_at           BIGINT NOT NULL
);

-- Stripe webhook events applied, by id, so that a delivery Stripe repeats has no second
-- effect; kept 30 days (Stripe retries for up to 3) as the diagnostics of what came in.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    outcome      TEXT NOT NULL
);

-- The usage emails sent (at 80 % and 100 % of a hard-capped plan's included attempts), one
-- per organisation, month and threshold; the primary key makes each one go out once.
CREATE TABLE usage_notices (
    organisation_id  TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    month            TEXT NOT NULL,
    percent          BIGINT NOT NULL,
    sent_at          BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, month, percent)
);
