-- What Stripe says of a running subscription beyond its plan: a change scheduled for the end
-- of the period (a downgrade or another interval), whether it ends with the period, and the
-- customer's billing email (with the time of the Stripe event it came from, so an older
-- event delivered late does not overwrite a newer address).
ALTER TABLE organisation_billing ADD COLUMN pending_plan TEXT;
ALTER TABLE organisation_billing ADD COLUMN pending_interval TEXT;
ALTER TABLE organisation_billing ADD COLUMN pending_at BIGINT;
ALTER TABLE organisation_billing ADD COLUMN cancel_at_period_end BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organisation_billing ADD COLUMN billing_email TEXT;
ALTER TABLE organisation_billing ADD COLUMN billing_email_at BIGINT;

-- Usage above a paid plan's included attempts, reported to Stripe's Billing Meter. Each row is
-- one report: the attempts from `covered_from` to `covered_to` of the month's overage. Its
-- identifier (organisation, month, covered_from) is written before the report is sent and
-- sent with every retry, so Stripe counts it once; `sent_at` is set when Stripe accepted it.
CREATE TABLE meter_reports (
    identifier       TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    customer_id      TEXT NOT NULL,
    month            TEXT NOT NULL,
    covered_from     BIGINT NOT NULL,
    covered_to       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX meter_reports_unsent ON meter_reports (sent_at, created_at);
CREATE INDEX meter_reports_month ON meter_reports (organisation_id, month);
