//! Outgoing email. Locally every message lands in an outbox folder that the dashboard
//! lists at `/dev/outbox`, so sign-up and password-reset links can be followed without a
//! mail server.

use std::path::PathBuf;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Where email goes.
#[derive(Debug, Clone)]
pub enum Mailer {
    /// Each message becomes a file in this folder.
    Outbox(PathBuf),
}

impl Mailer {
    /// Sends (or files) one message.
    pub async fn send(&self, email: &Email) -> std::io::Result<()> {
        match self {
            Self::Outbox(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                // Named by the wall clock in nanoseconds, so names sort in sending order.
                let sent = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let name = format!("{:020}-{}.eml", sent.as_nanos(), crate::secrets::new_id());
                let text = format!(
                    "To: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
                    email.to, email.subject, email.body
                );
                tokio::fs::write(dir.join(name), text).await
            }
        }
    }

    /// The outbox's messages, newest first, when this mailer has one.
    pub async fn outbox(&self) -> std::io::Result<Vec<String>> {
        let Self::Outbox(dir) = self;
        let mut names: Vec<PathBuf> = Vec::new();
        let Ok(mut entries) = tokio::fs::read_dir(dir).await else { return Ok(Vec::new()) };
        while let Some(entry) = entries.next_entry().await? {
            names.push(entry.path());
        }
        names.sort();
        names.reverse();
        let mut messages = Vec::with_capacity(names.len());
        for path in names {
            messages.push(tokio::fs::read_to_string(path).await?);
        }
        Ok(messages)
    }
}
