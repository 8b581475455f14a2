//! Messages from the public contact form: stored before anything else happens to them, then
//! forwarded to their topic's inbox, and deleted by [`super::retention`] after 90 days.

use serde::Serialize;
use sqlx::FromRow;

use super::Db;

/// One message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct SupportMessage {
    /// Its id, which is also the reference the sender is given.
    pub id: String,
    /// The topic it was sent under (`support`, `sales`, `dpa`, `security`, `privacy`).
    pub topic: String,
    /// The address to answer.
    pub email: String,
    /// The sender's name, possibly empty.
    pub name: String,
    /// The text.
    pub body: String,
    /// The sender's account, when they were signed in.
    pub user_id: Option<String>,
    /// When it arrived, Unix ms.
    pub received_at: i64,
    /// When its topic's inbox accepted it, Unix ms; empty until then.
    pub forwarded_at: Option<i64>,
}

/// Columns are constants and values are bound: the formatted SQL holds no input.
const COLUMNS: &str = "id, topic, email, name, body, user_id, received_at, forwarded_at";

/// Stores a message as it arrived.
pub async fn insert(db: &Db, message: &SupportMessage) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO support_messages (id, topic, email, name, body, user_id, received_at, \
         forwarded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&message.id)
    .bind(&message.topic)
    .bind(&message.email)
    .bind(&message.name)
    .bind(&message.body)
    .bind(&message.user_id)
    .bind(message.received_at)
    .bind(message.forwarded_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records that the message's inbox accepted it.
pub async fn mark_forwarded(db: &Db, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE support_messages SET forwarded_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Messages received since `since` (Unix ms), under `topic` if given, oldest first.
pub async fn list(
    db: &Db,
    topic: Option<&str>,
    since: i64,
) -> Result<Vec<SupportMessage>, sqlx::Error> {
    let of_topic = if topic.is_some() {
        "AND topic = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM support_messages WHERE received_at >= $1 {of_topic} \
         ORDER BY received_at, id"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(since);
    match topic {
        Some(topic) => query.bind(topic),
        None => query,
    }
    .fetch_all(db.pool())
    .await
}

/// Messages whose inbox has not accepted them yet, oldest first.
pub async fn unforwarded(db: &Db) -> Result<Vec<SupportMessage>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM support_messages WHERE forwarded_at IS NULL \
         ORDER BY received_at, id"
    )))
    .fetch_all(db.pool())
    .await
}

/// The messages an account sent while signed in, newest first.
pub async fn sent_by(db: &Db, user_id: &str) -> Result<Vec<SupportMessage>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM support_messages WHERE user_id = $1 \
         ORDER BY received_at DESC, id"
    )))
    .bind(user_id)
    .fetch_all(db.pool())
    .await
}
