//! The public contact form: its topics, the inbox each goes to, and what becomes of a
//! message. A message is stored before anything else, so nothing is lost to a mail outage;
//! then it is forwarded to its topic's inbox (with the sender as Reply-To) and, until an
//! inbox has accepted it, forwarded again every [`FORWARD_RETRY`]. The sender gets an
//! acknowledgement that names the topic and the reference but never repeats the text, so
//! the form cannot be used to send someone else words of a stranger's choosing.

use std::time::Duration;

use crate::clock::Clock;
use crate::db::Db;
use crate::db::support::{self, SupportMessage};
use crate::i18n;
use crate::mail::{self, Email, Mailer};

/// Longest message text, in characters.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Longest sender name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// How often messages no inbox has accepted yet are forwarded again.
pub const FORWARD_RETRY: Duration = Duration::from_secs(10 * 60);
/// How long one email may take to send before the form stops waiting for it (the message
/// is stored by then, and the retry forwards it).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What a message is about; each topic has its own inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Topic {
    /// Help with the service.
    Support,
    /// Plans, prices, contracts.
    Sales,
    /// A data processing agreement.
    Dpa,
    /// A vulnerability report.
    Security,
    /// Questions about personal data and data rights.
    Privacy,
}

impl Topic {
    /// Every topic, in the order the form lists them.
    pub const ALL: [Self; 5] = [
        Self::Support,
        Self::Sales,
        Self::Dpa,
        Self::Security,
        Self::Privacy,
    ];

    /// Stable name, as stored, configured and sent by the form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Support => "support",
            Self::Sales => "sales",
            Self::Dpa => "dpa",
            Self::Security => "security",
            Self::Privacy => "privacy",
        }
    }

    /// The topic with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|topic| topic.as_str() == name)
    }

    /// Its name for people, in English (the key of its translations).
    pub fn label(self) -> &'static str {
        match self {
            Self::Support => "Support",
            Self::Sales => "Sales",
            Self::Dpa => "DPA request",
            Self::Security => "Security",
            Self::Privacy => "Privacy",
        }
    }
}

/// The contact form's settings: the HumanProof project that protects it (its site key for
/// the widget, its backend secret for siteverify) and each offered topic's inbox.
#[derive(Debug, Clone)]
pub struct ContactForm {
    /// The site key the form's widget uses.
    pub site_key: String,
    /// The same project's backend secret, which the form's handler verifies tokens with.
    pub secret: String,
    /// Each offered topic and the address its messages go to; a topic not listed is not
    /// offered.
    pub inboxes: Vec<(Topic, String)>,
}

impl ContactForm {
    /// The inbox of `topic`, if the form offers it.
    pub fn inbox(&self, topic: Topic) -> Option<&str> {
        self.inboxes
            .iter()
            .find(|(offered, _)| *offered == topic)
            .map(|(_, inbox)| inbox.as_str())
    }

    /// Inboxes from `topic=address` pairs separated by commas (e.g.
    /// `support=help@example.com,dpa=legal@example.com`).
    pub fn parse_inboxes(list: &str) -> Result<Vec<(Topic, String)>, String> {
        let mut inboxes: Vec<(Topic, String)> = Vec::new();
        for entry in list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (name, address) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not topic=address"))?;
            let topic = Topic::parse(name.trim()).ok_or_else(|| {
                format!("{name:?} is not a topic (support, sales, dpa, security, privacy)")
            })?;
            let address = mail::normalize_address(address)
                .ok_or_else(|| format!("{address:?} is not an email address"))?;
            if inboxes.iter().any(|(listed, _)| *listed == topic) {
                return Err(format!("{name:?} is listed twice"));
            }
            inboxes.push((topic, address));
        }
        inboxes.sort();
        Ok(inboxes)
    }
}

/// A message as the form sent it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Its topic, one the form offers.
    pub topic: Topic,
    /// The sender's address, normalised.
    pub email: String,
    /// The sender's name, trimmed; possibly empty.
    pub name: String,
    /// The text, trimmed.
    pub body: String,
}

/// Why a message was refused; each reads as a sentence the form shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a topic the form offers.
    #[error("Choose a topic from the list.")]
    UnknownTopic,
    /// Not an email address.
    #[error("Enter a valid email address.")]
    InvalidEmail,
    /// Too long a name.
    #[error("Keep your name under 200 characters.")]
    NameTooLong,
    /// No text.
    #[error("Write your message.")]
    EmptyMessage,
    /// Too long a text.
    #[error("Keep your message under 10,000 characters.")]
    MessageTooLong,
}

impl Refusal {
    /// The machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownTopic => "unknown_topic",
            Self::InvalidEmail => "invalid_email",
            Self::NameTooLong => "name_too_long",
            Self::EmptyMessage => "empty_message",
            Self::MessageTooLong => "message_too_long",
        }
    }
}

/// Checks what the form sent.
pub fn check(
    form: &ContactForm,
    topic: &str,
    email: &str,
    name: &str,
    body: &str,
) -> Result<NewMessage, Refusal> {
    let topic = Topic::parse(topic)
        .filter(|topic| form.inbox(*topic).is_some())
        .ok_or(Refusal::UnknownTopic)?;
    let email = mail::normalize_address(email).ok_or(Refusal::InvalidEmail)?;
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Refusal::NameTooLong);
    }
    let body = body.trim();
    if body.is_empty() {
        return Err(Refusal::EmptyMessage);
    }
    if body.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Refusal::MessageTooLong);
    }
    Ok(NewMessage {
        topic,
        email,
        name: name.to_owned(),
        body: body.to_owned(),
    })
}

/// Stores the message (as the signed-in `user_id`'s, if any), forwards it to its topic's
/// inbox and acknowledges it to the sender in `lang`. Returns the stored message, whose id
/// is the sender's reference. Only storing can fail: a message stored is a message kept.
pub async fn receive(
    db: &Db,
    mailer: &Mailer,
    form: &ContactForm,
    message: NewMessage,
    user_id: Option<&str>,
    lang: &str,
    now: i64,
) -> Result<SupportMessage, sqlx::Error> {
    let mut stored = SupportMessage {
        id: crate::secrets::new_id(),
        topic: message.topic.as_str().to_owned(),
        email: message.email,
        name: message.name,
        body: message.body,
        user_id: user_id.map(str::to_owned),
        received_at: now,
        forwarded_at: None,
    };
    support::insert(db, &stored).await?;
    if forward(db, mailer, form, &stored, now).await {
        stored.forwarded_at = Some(now);
    }
    let values = [
        ("topic", i18n::translate(lang, message.topic.label())),
        ("reference", stored.id.as_str()),
    ];
    let acknowledgement = Email {
        to: stored.email.clone(),
        subject: i18n::translate(lang, "We received your message").to_owned(),
        body: i18n::fill(
            i18n::translate(
                lang,
                "Hello,\n\nwe received your message about \"{topic}\" and will answer at this address. Your reference is {reference}.\n\nIf you did not write to us, ignore this email: someone entered your address in our contact form, and we will not write to you again unless you answer.",
            ),
            &values,
        ),
        reply_to: None,
    };
    if let Err(err) = send(mailer, &acknowledgement).await {
        // A courtesy, not the message: the message itself is stored and forwarded.
        tracing::warn!(error = %err, "could not acknowledge a contact message");
    }
    Ok(stored)
}

/// Forwards every message no inbox has accepted yet; returns how many went out.
pub async fn forward_pending(
    db: &Db,
    mailer: &Mailer,
    form: &ContactForm,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let mut forwarded = 0;
    for message in support::unforwarded(db).await? {
        if forward(db, mailer, form, &message, now).await {
            forwarded += 1;
        }
    }
    Ok(forwarded)
}

/// Runs [`forward_pending`] every [`FORWARD_RETRY`] for as long as the server runs.
pub async fn forward_pending_periodically(db: Db, mailer: Mailer, form: ContactForm, clock: Clock) {
    let mut every = tokio::time::interval(FORWARD_RETRY);
    loop {
        every.tick().await;
        match forward_pending(&db, &mailer, &form, clock.now_ms()).await {
            Ok(0) => {}
            Ok(forwarded) => tracing::info!(forwarded, "contact messages forwarded on retry"),
            Err(err) => tracing::warn!(error = %err, "could not read unforwarded contact messages"),
        }
    }
}

/// Sends one message to its topic's inbox and records that it went; `false` if it did not
/// (no inbox for the topic any more, or the mail server refused), to be retried.
async fn forward(
    db: &Db,
    mailer: &Mailer,
    form: &ContactForm,
    message: &SupportMessage,
    now: i64,
) -> bool {
    let Some(inbox) = Topic::parse(&message.topic).and_then(|topic| form.inbox(topic)) else {
        tracing::warn!(topic = %message.topic, "a contact message's topic has no inbox configured");
        return false;
    };
    let topic = Topic::parse(&message.topic).map_or("?", Topic::label);
    let sender = if message.name.is_empty() {
        message.email.clone()
    } else {
        format!("{} <{}>", message.name, message.email)
    };
    let email = Email {
        to: inbox.to_owned(),
        subject: format!("[HumanProof] {topic} from {}", message.email),
        body: format!(
            "Topic: {topic}\nFrom: {sender}\nSigned in: {}\nReference: {}\n\n{}",
            if message.user_id.is_some() {
                "yes"
            } else {
                "no"
            },
            message.id,
            message.body,
        ),
        reply_to: Some(message.email.clone()),
    };
    if let Err(err) = send(mailer, &email).await {
        tracing::warn!(error = %err, "could not forward a contact message; it is kept and retried");
        return false;
    }
    if let Err(err) = support::mark_forwarded(db, &message.id, now).await {
        // It went out; at worst the retry sends it a second time.
        tracing::warn!(error = %err, "could not record a forwarded contact message");
    }
    true
}

async fn send(mailer: &Mailer, email: &Email) -> Result<(), String> {
    match tokio::time::timeout(SEND_TIMEOUT, mailer.send(email)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> ContactForm {
        ContactForm {
            site_key: "hp_site_x".into(),
            secret: "hp_secret_x".into(),
            inboxes: ContactForm::parse_inboxes("dpa=Legal@Example.com, support=help@example.com")
                .unwrap(),
        }
    }

    #[test]
    fn inboxes_are_read_from_configuration_and_bad_entries_refused() {
        let form = form();
        assert_eq!(form.inbox(Topic::Dpa), Some("legal@example.com"));
        assert_eq!(form.inbox(Topic::Sales), None);
        assert_eq!(form.inboxes[0].0, Topic::Support, "in the form's order");
        for bad in [
            "dpa",
            "lawyers=a@example.com",
            "dpa=nobody",
            "dpa=a@example.com,dpa=b@example.com",
        ] {
            assert!(ContactForm::parse_inboxes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_offered_topics_and_sane_input_are_accepted() {
        let form = form();
        let ok = check(
            &form,
            "dpa",
            " Ada@Example.com ",
            " Ada ",
            " Please send a DPA. ",
        )
        .unwrap();
        assert_eq!(
            (
                ok.topic,
                ok.email.as_str(),
                ok.name.as_str(),
                ok.body.as_str()
            ),
            (Topic::Dpa, "ada@example.com", "Ada", "Please send a DPA.")
        );
        let refused = |topic, email, name: &str, body: &str| {
            check(&form, topic, email, name, body).unwrap_err()
        };
        assert_eq!(
            refused("sales", "a@example.com", "", "Hi"),
            Refusal::UnknownTopic
        );
        assert_eq!(
            refused("dpa", "a@example.com\r\nBcc: x@y.z", "", "Hi"),
            Refusal::InvalidEmail
        );
        assert_eq!(
            refused("dpa", "a@example.com", "a\nb", "Hi"),
            Refusal::NameTooLong
        );
        assert_eq!(
            refused("dpa", "a@example.com", &"n".repeat(201), "Hi"),
            Refusal::NameTooLong
        );
        assert_eq!(
            refused("dpa", "a@example.com", "", "  \n "),
            Refusal::EmptyMessage
        );
        assert_eq!(
            refused("dpa", "a@example.com", "", &"m".repeat(10_001)),
            Refusal::MessageTooLong
        );
    }
}
