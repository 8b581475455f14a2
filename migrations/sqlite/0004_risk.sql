-- The edge's risk assessment travels with each event: the score in tenths (0 to 100), the
-- reasons with their points as JSON, the decision, and the preset and risk mode it was
-- made under. Starts blocked for their risk are counted per month.
ALTER TABLE telemetry_events ADD COLUMN risk_score BIGINT;
ALTER TABLE telemetry_events ADD COLUMN risk_factors TEXT;
ALTER TABLE telemetry_events ADD COLUMN risk_decision TEXT;
ALTER TABLE telemetry_events ADD COLUMN preset TEXT;
ALTER TABLE telemetry_events ADD COLUMN risk_mode TEXT;
ALTER TABLE usage_months ADD COLUMN risk_blocked BIGINT NOT NULL DEFAULT 0;
