-- The edge's risk assessment travels with each event: the score in tenths (0 to 100), the
-- reasons with their points as JSON, the decision, and the preset and risk mode it was
-- made under. Starts blocked for their risk are counted per month.
ALTER TABLE telemetry_events ADD COLUMN risk_score BIGINT;
ALTER TABLE telemetry_events ADD COLUMN risk_factors TEXT;
ALTER TABLE telemetry_events ADD COLUMN risk_decision TEXT;
ALTER TABLE telemetry_events ADD COLUMN preset TEXT;
ALTER TABLE telemetry_events ADD COLUMN risk_mode TEXT;
ALTER TABLE usage_months ADD COLUMN risk_blocked BIGINT NOT NULL DEFAULT 0;

-- Challenge starts per project, month and country or network (autonomous system). The edge
-- reports both with each event; they are counted here and never stored with the event, so
-- no per-visitor record holds them.
CREATE TABLE network_usage (
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    month       TEXT NOT NULL,
    dimension   TEXT NOT NULL,
    value       TEXT NOT NULL,
    starts      BIGINT NOT NULL DEFAULT 0,
    blocked     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, month, dimension, value)
);
