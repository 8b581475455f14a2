//! Outgoing email: through an SMTP server (lettre) in production, or, locally, into an
//! outbox folder that the dashboard lists at `/dev/outbox`, so sign-up and password-reset
//! links can be followed without a mail server.

use std::path::PathBuf;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Where replies go instead of the sender (a contact message's author), if anywhere.
    pub reply_to: Option<String>,
}

/// Where email goes.
// One per process, so the SMTP variant's size costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Mailer {
    /// Each message becomes a file in this folder.
    Outbox(PathBuf),
    /// An SMTP server.
    Smtp {
        /// The connection settings (`smtps://` or `smtp://…?tls=required` for TLS).
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The sender.
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Outbox(dir) => f.debug_tuple("Mailer::Outbox").field(dir).finish(),
            Self::Smtp { from, .. } => f
                .debug_struct("Mailer::Smtp")
                .field("from", &from.to_string())
                .finish_non_exhaustive(),
        }
    }
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Writing the outbox file failed.
    #[error(transparent)]
    Outbox(#[from] std::io::Error),
    /// The address or message could not be built.
    #[error("invalid message: {0}")]
    Message(String),
    /// The SMTP server refused or could not be reached.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// A normalised email address: trimmed and lowercased, one `@`, a dot in the domain, no
/// whitespace or control characters (so it cannot break a header); `None` if it is not one.
pub fn normalize_address(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    valid.then_some(email)
}

impl Mailer {
    /// SMTP from a URL such as `smtps://user:password@smtp.example.com` (credentials and
    /// TLS mode as lettre reads them) and a sender address.
    pub fn smtp(url: &str, from: &str) -> Result<Self, MailError> {
        crate::http::install_tls_provider();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build();
        let from = from
            .parse()
            .map_err(|err| MailError::Message(format!("sender {from:?}: {err}")))?;
        Ok(Self::Smtp { transport, from })
    }

    /// Sends (or files) one message.
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        match self {
            Self::Outbox(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                // Named by the wall clock in nanoseconds, so names sort in sending order.
                let sent = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let name = format!("{:020}-{}.eml", sent.as_nanos(), crate::secrets::new_id());
                let reply_to = email
                    .reply_to
                    .as_ref()
                    .map(|address| format!("Reply-To: {address}\r\n"))
                    .unwrap_or_default();
                let text = format!(
                    "To: {}\r\n{reply_to}Subject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
                    email.to, email.subject, email.body
                );
                tokio::fs::write(dir.join(name), text).await?;
                Ok(())
            }
            Self::Smtp { transport, from } => {
                let to: Mailbox = email
                    .to
                    .parse()
                    .map_err(|err| MailError::Message(format!("recipient: {err}")))?;
                let mut message = Message::builder().from(from.clone()).to(to);
                if let Some(reply_to) = &email.reply_to {
                    let reply_to: Mailbox = reply_to
                        .parse()
                        .map_err(|err| MailError::Message(format!("reply-to: {err}")))?;
                    message = message.reply_to(reply_to);
                }
                let message = message
                    .subject(&email.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(email.body.clone())
                    .map_err(|err| MailError::Message(err.to_string()))?;
                transport.send(message).await?;
                Ok(())
            }
        }
    }

    /// The outbox's messages, newest first; empty for SMTP.
    pub async fn outbox(&self) -> std::io::Result<Vec<String>> {
        let Self::Outbox(dir) = self else {
            return Ok(Vec::new());
        };
        let mut names: Vec<PathBuf> = Vec::new();
        let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
            return Ok(Vec::new());
        };
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
