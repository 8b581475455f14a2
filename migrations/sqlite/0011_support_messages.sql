-- Messages sent through the public contact form. Each is kept 90 days after it arrived
-- (`retention::SUPPORT_MESSAGE_TTL_MS`); it is forwarded to its topic's inbox by email, and
-- `forwarded_at` stays empty until that worked, so a message is never lost to a mail outage.
CREATE TABLE support_messages (
    id            TEXT PRIMARY KEY,
    topic         TEXT NOT NULL,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    body          TEXT NOT NULL,
    -- The sender's account when they were signed in; the message goes with the account.
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    received_at   BIGINT NOT NULL,
    forwarded_at  BIGINT
);
CREATE INDEX support_messages_received ON support_messages (received_at);
CREATE INDEX support_messages_user ON support_messages (user_id);
