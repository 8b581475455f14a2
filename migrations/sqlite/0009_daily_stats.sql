-- Daily statistics per project and UTC day, rolled up from the telemetry and verification
-- events by a job (`db::stats::roll_up_day`): re-running a day rewrites its row from the same
-- events. Kept for the plan's statistics window, never over 14 days.
CREATE TABLE daily_stats (
    project_id          TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- YYYY-MM-DD, UTC.
    day                 TEXT NOT NULL,
    -- Challenge starts: issued, refused by a gate, or blocked for their risk.
    starts              BIGINT NOT NULL,
    -- Redeems that earned a token, and redeems that failed after claiming the challenge.
    solved              BIGINT NOT NULL,
    failed              BIGINT NOT NULL,
    -- Starts scored "challenge" or "block" (in observe mode too).
    suspicious          BIGINT NOT NULL,
    -- Starts refused for their risk score (enforce mode).
    blocked             BIGINT NOT NULL,
    -- Starts refused by a gate, and how many for each reason code (a JSON object).
    refused             BIGINT NOT NULL,
    refusal_reasons     TEXT NOT NULL,
    -- Siteverify calls, those that succeeded, and failures by error code (a JSON object).
    siteverify_calls    BIGINT NOT NULL,
    siteverify_success  BIGINT NOT NULL,
    siteverify_errors   TEXT NOT NULL,
    rolled_up_at        BIGINT NOT NULL,
    PRIMARY KEY (project_id, day)
);

-- The roll-up redoes the days of the events received since its last run, late deliveries
-- included.
CREATE INDEX telemetry_events_received ON telemetry_events (received_at);
