-- Which of a project's monthly-limit notices (80 and 100 percent) went out for a month, so
-- each goes out once. Kept 62 days, like the organisations' usage notices.
CREATE TABLE project_limit_notices (
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    month       TEXT NOT NULL,
    percent     BIGINT NOT NULL,
    sent_at     BIGINT NOT NULL,
    PRIMARY KEY (project_id, month, percent)
);
CREATE INDEX project_limit_notices_sent ON project_limit_notices (sent_at);
