-- EU VAT ids, checked against VIES. (0008: the billing branch that runs alongside takes
-- 0007; sqlx applies a missing lower version whenever it appears, so the gap is harmless.)

-- An organisation's VAT id and where its check stands: `valid`, `invalid`, `pending` while
-- VIES is down (retried once `next_check_at` has passed, until `grace_ends_at`), or
-- `unverified` once the grace period ran out without an answer.
CREATE TABLE organisation_vat (
    organisation_id  TEXT PRIMARY KEY REFERENCES organisations (id) ON DELETE CASCADE,
    -- Normalised: the country prefix (EL for Greece) and the number, no spaces.
    vat_id           TEXT NOT NULL,
    status           TEXT NOT NULL,
    checked_at       BIGINT NOT NULL,
    grace_ends_at    BIGINT,
    next_check_at    BIGINT,
    -- The tax id (`txi_…`) Stripe made of it on the organisation's customer, once valid.
    stripe_tax_id    TEXT,
    updated_at       BIGINT NOT NULL
);

-- Every question put to VIES and its answer, append-only: rows are inserted, never
-- changed, and deleted only by the retention rule (valid and invalid kept 10 years as proof
-- for tax audits, "down" 90 days). No foreign key to the organisation, on purpose: the proof
-- must outlive an organisation deleted within those 10 years.
CREATE TABLE vat_checks (
    id                   TEXT PRIMARY KEY,
    organisation_id      TEXT NOT NULL,
    vat_id               TEXT NOT NULL,
    -- valid, invalid or down.
    outcome              TEXT NOT NULL,
    -- VIES's requestIdentifier, when the operator's requester VAT id was sent.
    consultation_number  TEXT,
    -- The trader's name and address as VIES returned them for a valid id.
    trader_name          TEXT,
    trader_address       TEXT,
    -- For "down": VIES's error code or what failed.
    detail               TEXT,
    checked_at           BIGINT NOT NULL
);
CREATE INDEX vat_checks_by_organisation ON vat_checks (organisation_id, checked_at);
CREATE INDEX vat_checks_by_outcome ON vat_checks (outcome, checked_at);
