//! Accounts: sign-up, email verification, sign-in with throttling, sessions and password
//! reset. The dashboard's handlers are thin wrappers around these functions.
//!
//! - Passwords are hashed with argon2id (the crate's default cost, OWASP's minimum).
//! - Session cookies, email links and reset links carry 256 random bits; only their SHA-256
//!   is stored, so a database leak does not hand out live sessions or links.
//! - Attempts are throttled under keyed hashes, never the raw values: sign-in per email and
//!   per client network (an IPv6 client's /64), the second factor per account, sign-up and
//!   reset requests per network (and reset requests per email too). Each attempt is counted
//!   before it is checked, in one atomic statement, so parallel guesses cannot slip past.
//! - argon2 runs on the blocking pool, at most one hash per core at a time, so a burst of
//!   sign-ins queues behind itself instead of stalling siteverify on the async workers.
//! - Neither sign-in nor sign-up nor a reset request tells whether an email has an account:
//!   unknown emails cost the same argon2 work, and a sign-up for a taken address answers as
//!   any sign-up does, while its owner gets an email about it.

use std::net::IpAddr;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use humanproof_protocol::privacy::client_network;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::db::accounts::{self, EmailTokenPurpose, User, UserStatus};
use crate::db::{is_unique_violation, orgs};
use crate::i18n;
use crate::mail::Email;
use crate::metrics::Job;
use crate::secrets::{hash_secret, new_token};
use crate::state::AppState;
use crate::totp;

/// How long a session lasts.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How long an email verification link works.
pub const VERIFY_LINK_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a password reset link works.
pub const RESET_LINK_TTL_MS: i64 = 60 * 60 * 1000;
/// The window attempts are counted over.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failed sign-ins for one email within the window before sign-in is refused.
pub const MAX_FAILURES_PER_EMAIL: i64 = 5;
/// Failed sign-ins from one client network within the window before sign-in is refused.
pub const MAX_FAILURES_PER_IP: i64 = 20;
/// Sign-ups from one client network within the window.
pub const MAX_SIGN_UPS_PER_IP: i64 = 10;
/// Password reset requests from one client network within the window.
pub const MAX_RESET_REQUESTS_PER_IP: i64 = 5;
/// Password reset requests for one email within the window, so nobody floods a mailbox.
pub const MAX_RESET_REQUESTS_PER_EMAIL: i64 = 3;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password accepted (argon2 would take more, but nobody types this much).
pub const MAX_PASSWORD_LEN: usize = 128;
/// How long a password, passkey or second factor counts as recent enough to add a sign-in
/// factor.
pub const RECENT_AUTHENTICATION_MS: i64 = 10 * 60 * 1000;
/// How long a sign-in whose password step passed waits for the second factor.
pub const SECOND_FACTOR_TTL_MS: i64 = 10 * 60 * 1000;
/// Wrong second-factor codes for one account within the window before they are refused.
pub const MAX_SECOND_FACTOR_FAILURES: i64 = 5;
/// Recovery codes issued when two-factor authentication is turned on.
pub const RECOVERY_CODES: usize = 10;
/// How long after the request an account is deleted: time to change one's mind, well
/// within the 30 days the privacy policy promises.
pub const DELETION_GRACE_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// How long the "keep my account" button of the sign-in page works.
pub const RESTORE_TOKEN_TTL_MS: i64 = 15 * 60 * 1000;

/// Why an account action was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not an email address.
    #[error("Enter a valid email address.")]
    InvalidEmail,
    /// The address the account already has.
    #[error("That is already your address.")]
    SameEmail,
    /// Too short or too long.
    #[error("Use a password of {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters.")]
    WeakPassword,
    /// Unknown email or wrong password (deliberately indistinguishable).
    #[error("Wrong email or password.")]
    WrongCredentials,
    /// Too many attempts.
    #[error("Too many attempts. Try again in {} minutes.", .retry_after_s.div_ceil(60))]
    Throttled {
        /// Seconds until the oldest counted failure leaves the window.
        retry_after_s: u64,
    },
    /// The account is marked for deletion.
    #[error("This account is marked for deletion.")]
    AccountClosed,
    /// The link is unknown, used or expired.
    #[error("This link is invalid, already used or expired. Ask for a new one.")]
    InvalidLink,
    /// A TOTP or recovery code that does not match (or was already used).
    #[error(
        "That code is not valid. Enter the current code from your app, or an unused recovery code."
    )]
    WrongCode,
    /// A code that does not match the secret being set up (there are no recovery codes yet).
    #[error("That code is not valid. Enter the current code your app shows for HumanProof.")]
    WrongSetupCode,
    /// The password step of a two-factor sign-in expired or never happened.
    #[error("Your sign-in expired. Sign in again.")]
    SignInAgain,
    /// Two-factor authentication is already on.
    #[error("Two-factor authentication is already on.")]
    AlreadyEnabled,
    /// Not one of the dashboard's languages.
    #[error("Pick a language from the list.")]
    UnknownLanguage,
    /// The password is right, but the account is marked for deletion: it can be kept until
    /// then with this one-time token (the sign-in page offers it).
    #[error("This account is scheduled for deletion.")]
    DeletionPending {
        /// Keeps the account, once, for [`RESTORE_TOKEN_TTL_MS`].
        restore_token: String,
        /// When the deletion job deletes the account, Unix ms.
        deletion_at: i64,
    },
    /// An organisation only this account owns still pays for a subscription, which deleting
    /// the account would leave billing.
    #[error(
        "An organisation you alone own still has a subscription. Cancel it on its billing page first, or make someone else an owner."
    )]
    SubscriptionRunning,
    /// Someone following an invitation to an address that already has an account: the
    /// invitation reached that mailbox, so saying so tells them nothing new.
    #[error("This address already has an account. Sign in to accept the invitation.")]
    AddressHasAccount,
    /// Storage failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// At most one argon2 computation per core at a time: each takes ~19 MiB and tens of
/// milliseconds of CPU, and more in parallel would only queue inside the OS instead.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
});

/// Runs argon2 work on the blocking pool, within [`HASHING`]'s bound.
async fn argon2_work<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = HASHING
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(work)
        .await
        .expect("argon2 does not panic")
}

fn hash_now(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS provides randomness");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 accepts any password")
        .to_string()
}

/// argon2id hash in PHC string format.
pub async fn hash_password(password: &str) -> String {
    let password = password.to_owned();
    argon2_work(move || hash_now(&password)).await
}

/// Whether `password` matches a stored hash.
pub async fn verify_password(stored: &str, password: &str) -> bool {
    let (stored, password) = (stored.to_owned(), password.to_owned());
    argon2_work(move || {
        PasswordHash::new(&stored).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
    })
    .await
}

/// A hash of nothing anyone knows, checked against when an email has no account, so that
/// answering "wrong email or password" costs the same argon2 work either way.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_now(&crate::secrets::new_token()));

async fn verify_or_waste_time(stored: Option<&str>, password: &str) -> bool {
    match stored {
        Some(stored) => verify_password(stored, password).await,
        None => {
            let dummy = LazyLock::force(&DUMMY_HASH).clone();
            verify_password(&dummy, password).await;
            false
        }
    }
}

/// A normalised email address ([`crate::mail::normalize_address`]).
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    crate::mail::normalize_address(raw).ok_or(AccountError::InvalidEmail)
}

fn check_password(password: &str) -> Result<(), AccountError> {
    let len = password.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err(AccountError::WeakPassword)
    }
}

/// A keyed hash naming what failed sign-ins are counted against, so neither emails nor IPs
/// are stored in the clear and the counts cannot be linked to either without the secret.
fn throttle_subject(state: &AppState, kind: &str, value: &str) -> String {
    let key = state.master.derive("humanproof/login-throttle/v1");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The throttle subject of a client: its network (an IPv6 client's /64), keyed.
fn network_subject(state: &AppState, kind: &str, client_ip: IpAddr) -> String {
    throttle_subject(state, kind, &client_network(&client_ip.to_string()))
}

/// Counts an attempt against `subject` and refuses it when it is over `limit` within the
/// window, saying when to retry. Counting first is what makes the limit hold under
/// parallel requests: each one gets its own place in the count.
async fn take_attempt(
    state: &AppState,
    subject: &str,
    limit: i64,
    now: i64,
) -> Result<(), AccountError> {
    let (attempts, window_start) =
        accounts::count_attempt(&state.db, subject, now, THROTTLE_WINDOW_MS).await?;
    if attempts <= limit {
        return Ok(());
    }
    let retry_after_ms = window_start
        .saturating_add(THROTTLE_WINDOW_MS)
        .saturating_sub(now);
    Err(AccountError::Throttled {
        retry_after_s: u64::try_from(retry_after_ms.max(1000) / 1000).unwrap_or(1),
    })
}

/// Creates an account and its first organisation, and sends the link that confirms the
/// address and signs in. `language` (a dashboard language, e.g. negotiated from the sign-up
/// request) becomes the account's preference, so the email and the dashboard speak it from
/// the start. A taken address gets the same answer, and its owner an email saying someone
/// tried: the form must not tell anyone who has an account.
pub async fn sign_up(
    state: &AppState,
    email: &str,
    password: &str,
    organisation: &str,
    language: &str,
    client_ip: IpAddr,
) -> Result<(), AccountError> {
    let email = normalize_email(email)?;
    check_password(password)?;
    let now = state.clock.now_ms();
    take_sign_up_attempt(state, client_ip, now).await?;
    let password_hash = hash_password(password).await;
    let mut user = match accounts::insert_user(&state.db, &email, &password_hash, false, now).await
    {
        Ok(user) => user,
        Err(err) if is_unique_violation(&err) => {
            if let Some((owner, _)) = accounts::find_user_by_email(&state.db, &email).await? {
                warn_of_sign_up_attempt(state, &owner).await;
            }
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    adopt_language(state, &mut user, language, now).await?;
    let organisation = organisation.trim();
    let organisation = if organisation.is_empty() {
        email.as_str()
    } else {
        organisation
    };
    let organisation_id = orgs::create_organisation(&state.db, organisation, &user.id, now).await?;
    orgs::audit(
        &state.db,
        Some(&organisation_id),
        &format!("user:{email}"),
        "account.signed_up",
        None,
        now,
    )
    .await?;
    send_verification(state, &user).await?;
    Ok(())
}

/// Creates the account of someone following an invitation, and signs it in. The address is
/// the invited one and counts as confirmed (the invitation's link reached it), and no
/// organisation of its own is created: they came to join one. Accepting stays a step of its
/// own, on the invitation's page.
pub async fn sign_up_invited(
    state: &AppState,
    invitation_token: &str,
    password: &str,
    language: &str,
    client_ip: IpAddr,
) -> Result<SignIn, AccountError> {
    check_password(password)?;
    let now = state.clock.now_ms();
    take_sign_up_attempt(state, client_ip, now).await?;
    let (_, _, invitation) = orgs::find_invitation(&state.db, &hash_secret(invitation_token), now)
        .await?
        .ok_or(AccountError::InvalidLink)?;
    let password_hash = hash_password(password).await;
    let mut user =
        match accounts::insert_user(&state.db, &invitation.email, &password_hash, false, now).await
        {
            Ok(user) => user,
            Err(err) if is_unique_violation(&err) => return Err(AccountError::AddressHasAccount),
            Err(err) => return Err(err.into()),
        };
    accounts::mark_email_verified(&state.db, &user.id, now).await?;
    user.email_verified = true;
    adopt_language(state, &mut user, language, now).await?;
    orgs::audit(
        &state.db,
        None,
        &format!("user:{}", user.email),
        "account.signed_up",
        None,
        now,
    )
    .await?;
    after_first_factor(state, &user, FirstFactor::Password).await
}

/// Counts a sign-up from the client's network against [`MAX_SIGN_UPS_PER_IP`].
async fn take_sign_up_attempt(
    state: &AppState,
    client_ip: IpAddr,
    now: i64,
) -> Result<(), AccountError> {
    let subject = network_subject(state, "sign-up", client_ip);
    take_attempt(state, &subject, MAX_SIGN_UPS_PER_IP, now).await
}

/// Makes `language` (the one the sign-up request asked for), when the dashboard speaks it,
/// the new account's preference, so its emails and pages speak it from the start.
async fn adopt_language(
    state: &AppState,
    user: &mut User,
    language: &str,
    now: i64,
) -> Result<(), AccountError> {
    if let Some(language) = i18n::supported(language).filter(|language| *language != user.language)
    {
        accounts::set_language(&state.db, &user.id, language, now).await?;
        user.language = language.to_owned();
    }
    Ok(())
}

/// Tells an account's owner that someone tried to sign up with their address.
async fn warn_of_sign_up_attempt(state: &AppState, owner: &User) {
    let body = "Someone tried to create a HumanProof account with this email address, which already has one. If it was you, sign in or reset your password:\n\n{link}\n\nIf it was not you, you can ignore this message: nothing was changed.";
    let link = format!("{}/sign-in", state.web.public_url);
    email_user(
        state,
        owner,
        "Someone tried to sign up with your email",
        body,
        &[("link", &link)],
    )
    .await;
}

/// Emails `user` in their language: `subject` and `body` are catalogue keys (English), and
/// `values` fill the body's placeholders after translation.
async fn email_user(
    state: &AppState,
    user: &User,
    subject: &str,
    body: &str,
    values: &[(&str, &str)],
) {
    let lang = &user.language;
    let email = Email {
        to: user.email.clone(),
        subject: i18n::translate(lang, subject).to_owned(),
        body: i18n::fill(i18n::translate(lang, body), values),
        reply_to: None,
    };
    deliver(state, &email).await;
}

/// Sends a fresh verification link, in the user's language; earlier links stop working.
pub async fn send_verification(state: &AppState, user: &User) -> Result<(), AccountError> {
    let token = new_token();
    let now = state.clock.now_ms();
    accounts::insert_email_token(
        &state.db,
        &hash_secret(&token),
        &user.id,
        EmailTokenPurpose::VerifyEmail,
        now,
        now + VERIFY_LINK_TTL_MS,
    )
    .await?;
    let link = format!("{}/verify-email?token={token}", state.web.public_url);
    let body = "Confirm your email address by opening this link within 24 hours:\n\n{link}\n\nIf you did not sign up, ignore this message.";
    email_user(
        state,
        user,
        "Confirm your HumanProof account",
        body,
        &[("link", &link)],
    )
    .await;
    Ok(())
}

/// Follows a verification link; returns the account it confirmed, which the link also
/// signs in (the link is the proof a sign-up has to give).
pub async fn verify_email(state: &AppState, token: &str) -> Result<User, AccountError> {
    let now = state.clock.now_ms();
    let user_id = accounts::use_email_token(
        &state.db,
        &hash_secret(token),
        EmailTokenPurpose::VerifyEmail,
        now,
    )
    .await?
    .ok_or(AccountError::InvalidLink)?;
    accounts::mark_email_verified(&state.db, &user_id, now).await?;
    let user = accounts::find_user(&state.db, &user_id)
        .await?
        .ok_or(AccountError::InvalidLink)?;
    if user.status == UserStatus::MarkedForDeletion {
        return Err(AccountError::AccountClosed);
    }
    Ok(user)
}

/// What a correct password leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// Signed in: the session token for the cookie.
    Done(String),
    /// The account has a second factor (TOTP or a passkey): this token's session only admits
    /// the second-factor form, for [`SECOND_FACTOR_TTL_MS`].
    SecondFactorDue(String),
}

/// Checks the password under the throttling rules and starts a session (or its first half,
/// when a second factor is due).
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    client_ip: IpAddr,
) -> Result<(User, SignIn), AccountError> {
    let email = normalize_email(email).map_err(|_| AccountError::WrongCredentials)?;
    let now = state.clock.now_ms();
    let by_email = throttle_subject(state, "email", &email);
    let by_ip = network_subject(state, "ip", client_ip);
    take_attempt(state, &by_email, MAX_FAILURES_PER_EMAIL, now).await?;
    take_attempt(state, &by_ip, MAX_FAILURES_PER_IP, now).await?;
    let found = accounts::find_user_by_email(&state.db, &email).await?;
    let stored = found.as_ref().map(|(_, stored)| stored.as_str());
    if !verify_or_waste_time(stored, password).await {
        return Err(AccountError::WrongCredentials);
    }
    let (user, _) = found.expect("a verified password has an account");
    if user.status == UserStatus::MarkedForDeletion {
        let requested_at = accounts::deletion_requested_at(&state.db, &user.id).await?;
        let restore_token = new_token();
        accounts::insert_email_token(
            &state.db,
            &hash_secret(&restore_token),
            &user.id,
            EmailTokenPurpose::RestoreAccount,
            now,
            now + RESTORE_TOKEN_TTL_MS,
        )
        .await?;
        return Err(AccountError::DeletionPending {
            restore_token,
            deletion_at: requested_at.unwrap_or(now) + DELETION_GRACE_MS,
        });
    }
    // A right password clears the account's count and gives the network its attempt back.
    accounts::clear_attempts(&state.db, &by_email).await?;
    accounts::refund_attempt(&state.db, &by_ip).await?;
    let signed_in = after_first_factor(state, &user, FirstFactor::Password).await?;
    Ok((user, signed_in))
}

/// How a sign-in's first step was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFactor {
    /// The password: the session counts as freshly authenticated.
    Password,
    /// An emailed link, which proves the address but not the password: enough to use the
    /// dashboard, not to add a sign-in factor without confirming the password first.
    EmailLink,
}

/// Signs in an account that passed its first factor: a full session, or the first half of
/// one when a second factor is due.
pub async fn after_first_factor(
    state: &AppState,
    user: &User,
    first: FirstFactor,
) -> Result<SignIn, AccountError> {
    if user.totp_enabled || crate::db::passkeys::has_any(&state.db, &user.id).await? {
        return Ok(SignIn::SecondFactorDue(
            insert_session(state, user, true, false).await?,
        ));
    }
    Ok(SignIn::Done(
        insert_session(state, user, false, first == FirstFactor::Password).await?,
    ))
}

/// Starts a full session for `user` who just proved themselves (e.g. with a passkey): the
/// token for the cookie.
pub async fn start_session(state: &AppState, user: &User) -> Result<String, sqlx::Error> {
    insert_session(state, user, false, true).await
}

/// A new session token: a full session, or one waiting [`SECOND_FACTOR_TTL_MS`] for its
/// second factor; `authenticated` when its owner just gave a password or a passkey.
async fn insert_session(
    state: &AppState,
    user: &User,
    second_factor_due: bool,
    authenticated: bool,
) -> Result<String, sqlx::Error> {
    let token = new_token();
    let now = state.clock.now_ms();
    let ttl = if second_factor_due {
        SECOND_FACTOR_TTL_MS
    } else {
        SESSION_TTL_MS
    };
    let authenticated_at = authenticated.then_some(now);
    accounts::insert_session(
        &state.db,
        &hash_secret(&token),
        &user.id,
        second_factor_due,
        authenticated_at,
        now,
        now + ttl,
    )
    .await?;
    Ok(token)
}

/// Whether the session's owner gave their password, a passkey or a second factor within
/// [`RECENT_AUTHENTICATION_MS`]: what adding a sign-in factor requires.
pub async fn recently_authenticated(
    state: &AppState,
    session_token: &str,
) -> Result<bool, sqlx::Error> {
    let at = accounts::session_authenticated_at(&state.db, &hash_secret(session_token)).await?;
    Ok(at.is_some_and(|at| state.clock.now_ms() - at <= RECENT_AUTHENTICATION_MS))
}

/// Confirms it is really the session's owner, with the password or (when two-factor is on)
/// a current authenticator code. Throttled per account like sign-in, so a stolen session
/// cannot be used to guess the password.
pub async fn confirm_identity(
    state: &AppState,
    user: &User,
    session_token: &str,
    password_or_code: &str,
) -> Result<(), AccountError> {
    let now = state.clock.now_ms();
    let subject = throttle_subject(state, "confirm-identity", &user.id);
    take_attempt(state, &subject, MAX_FAILURES_PER_EMAIL, now).await?;
    let typed = password_or_code.trim();
    let is_code = typed.len() == 6 && typed.bytes().all(|b| b.is_ascii_digit());
    let proven = if is_code && user.totp_enabled {
        second_factor_matches(state, user, typed, now).await?
    } else {
        let stored = accounts::password_hash(&state.db, &user.id).await?;
        verify_or_waste_time(stored.as_deref(), password_or_code).await
    };
    if !proven {
        return Err(AccountError::WrongCredentials);
    }
    accounts::clear_attempts(&state.db, &subject).await?;
    accounts::mark_authenticated(&state.db, &hash_secret(session_token), now).await?;
    Ok(())
}

/// Tells an account's owner that a way to sign in was added, so an intruder who added one
/// does not go unnoticed. `factor` is already in the owner's language.
pub async fn notify_factor_added(state: &AppState, user: &User, factor: &str) {
    let subject = "A new way to sign in was added to your HumanProof account";
    let body = "A new way to sign in was added to your account: {factor}.\n\nIf this was you, there is nothing to do. If it was not, reset your password now: that signs out every session and pauses the passkeys added since your last password change.\n\n{link}";
    let link = format!("{}/forgot-password", state.web.public_url);
    email_user(
        state,
        user,
        subject,
        body,
        &[("factor", factor), ("link", &link)],
    )
    .await;
}

/// The user whose sign-in waits for a second factor under this session token.
pub async fn second_factor_user(
    state: &AppState,
    token: &str,
) -> Result<Option<User>, sqlx::Error> {
    accounts::session_user(&state.db, &hash_secret(token), true, state.clock.now_ms()).await
}

/// Completes a two-factor sign-in whose passkey [`crate::passkeys`] verified.
pub async fn complete_second_factor_with_passkey(
    state: &AppState,
    token: &str,
) -> Result<(), AccountError> {
    second_factor_user(state, token)
        .await?
        .ok_or(AccountError::SignInAgain)?;
    let now = state.clock.now_ms();
    accounts::complete_second_factor(&state.db, &hash_secret(token), now, now + SESSION_TTL_MS)
        .await?;
    Ok(())
}

/// Completes a two-factor sign-in with a TOTP code or a recovery code. Wrong codes count
/// against the account like wrong passwords.
pub async fn complete_second_factor(
    state: &AppState,
    token: &str,
    code: &str,
) -> Result<User, AccountError> {
    let now = state.clock.now_ms();
    let user = second_factor_user(state, token)
        .await?
        .ok_or(AccountError::SignInAgain)?;
    let subject = throttle_subject(state, "second-factor", &user.id);
    take_attempt(state, &subject, MAX_SECOND_FACTOR_FAILURES, now).await?;
    if !second_factor_matches(state, &user, code, now).await? {
        return Err(AccountError::WrongCode);
    }
    accounts::clear_attempts(&state.db, &subject).await?;
    accounts::complete_second_factor(&state.db, &hash_secret(token), now, now + SESSION_TTL_MS)
        .await?;
    Ok(user)
}

async fn second_factor_matches(
    state: &AppState,
    user: &User,
    code: &str,
    now: i64,
) -> Result<bool, AccountError> {
    let Some((sealed, last_step)) = accounts::totp_secret(&state.db, &user.id).await? else {
        return Ok(false);
    };
    let Some(secret) = totp::open(&state.master, &sealed) else {
        tracing::error!(user = %user.id, "a TOTP secret does not decrypt: was the master secret changed?");
        return Ok(false);
    };
    if let Some(step) = totp::verify(&secret, code, now, last_step) {
        return Ok(accounts::accept_totp_step(&state.db, &user.id, step).await?);
    }
    let recovery = normalize_recovery_code(code);
    if recovery.len() == 10
        && accounts::use_recovery_code(&state.db, &user.id, &hash_secret(&recovery), now).await?
    {
        audit_account(state, user, "account.recovery_code_used", None).await?;
        return Ok(true);
    }
    Ok(false)
}

fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Sets the language of the user's dashboard and emails, one of [`i18n::LANGUAGES`].
pub async fn set_language(
    state: &AppState,
    user: &User,
    language: &str,
) -> Result<(), AccountError> {
    if !i18n::LANGUAGES.contains(&language) {
        return Err(AccountError::UnknownLanguage);
    }
    accounts::set_language(&state.db, &user.id, language, state.clock.now_ms()).await?;
    Ok(())
}

/// A TOTP setup begun and not confirmed yet: the secret in base32 and the `otpauth://` URI
/// for authenticator apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTotp {
    /// The secret, as a person types it into an app.
    pub secret: String,
    /// The `otpauth://` URI the QR code carries.
    pub uri: String,
}

/// Starts setting up TOTP: a secret kept unconfirmed until [`confirm_totp`]. A setup already
/// begun keeps its secret, so the app that scanned it keeps working after a wrong code or a
/// reload; only [`cancel_totp_setup`] throws it away.
pub async fn begin_totp_setup(state: &AppState, user: &User) -> Result<PendingTotp, AccountError> {
    if user.totp_enabled {
        return Err(AccountError::AlreadyEnabled);
    }
    if let Some(pending) = pending_totp(state, user).await? {
        return Ok(pending);
    }
    let secret = totp::new_secret();
    accounts::set_pending_totp(
        &state.db,
        &user.id,
        &totp::seal(&state.master, &secret),
        state.clock.now_ms(),
    )
    .await?;
    Ok(PendingTotp {
        secret: totp::base32(&secret),
        uri: totp::otpauth_uri(&user.email, &secret),
    })
}

/// The TOTP setup the user began and has not confirmed, if any.
pub async fn pending_totp(
    state: &AppState,
    user: &User,
) -> Result<Option<PendingTotp>, AccountError> {
    if user.totp_enabled {
        return Ok(None);
    }
    let Some((sealed, _)) = accounts::totp_secret(&state.db, &user.id).await? else {
        return Ok(None);
    };
    Ok(
        totp::open(&state.master, &sealed).map(|secret| PendingTotp {
            secret: totp::base32(&secret),
            uri: totp::otpauth_uri(&user.email, &secret),
        }),
    )
}

/// Throws away a TOTP setup that was begun and not confirmed.
pub async fn cancel_totp_setup(state: &AppState, user: &User) -> Result<(), AccountError> {
    if user.totp_enabled {
        return Err(AccountError::AlreadyEnabled);
    }
    accounts::disable_totp(&state.db, &user.id, state.clock.now_ms()).await?;
    Ok(())
}

/// Turns TOTP on once the user proves their app has the secret; returns the recovery codes,
/// shown this once.
pub async fn confirm_totp(
    state: &AppState,
    user: &User,
    code: &str,
) -> Result<Vec<String>, AccountError> {
    if user.totp_enabled {
        return Err(AccountError::AlreadyEnabled);
    }
    let now = state.clock.now_ms();
    let (sealed, _) = accounts::totp_secret(&state.db, &user.id)
        .await?
        .ok_or(AccountError::WrongSetupCode)?;
    let secret = totp::open(&state.master, &sealed).ok_or(AccountError::WrongSetupCode)?;
    let step = totp::verify(&secret, code, now, None).ok_or(AccountError::WrongSetupCode)?;
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            // 50 random bits as ten base32 characters, e.g. `k3xq7-m2pva`.
            let mut bytes = [0u8; 7];
            getrandom::fill(&mut bytes).expect("the OS provides randomness");
            let raw = totp::base32(&bytes).to_ascii_lowercase();
            format!("{}-{}", &raw[..5], &raw[5..10])
        })
        .collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|code| hash_secret(&normalize_recovery_code(code)))
        .collect();
    accounts::enable_totp(&state.db, &user.id, step, &hashes, now).await?;
    audit_account(state, user, "account.2fa_enabled", None).await?;
    let factor = i18n::translate(
        &user.language,
        "two-factor authentication with an authenticator app",
    );
    notify_factor_added(state, user, factor).await;
    Ok(codes)
}

/// Turns TOTP off after checking the password.
pub async fn disable_totp(
    state: &AppState,
    user: &User,
    password: &str,
) -> Result<(), AccountError> {
    check_current_password(state, user, password).await?;
    accounts::disable_totp(&state.db, &user.id, state.clock.now_ms()).await?;
    audit_account(state, user, "account.2fa_disabled", None).await?;
    Ok(())
}

/// Marks the account for deletion after checking the password: it is signed out, and the
/// deletion job deletes it after [`DELETION_GRACE_MS`] unless its owner signs in and keeps
/// it. Refused while an organisation only it owns pays for a subscription.
pub async fn mark_for_deletion(
    state: &AppState,
    user: &User,
    password: &str,
) -> Result<(), AccountError> {
    check_current_password(state, user, password).await?;
    for organisation_id in accounts::solely_owned_organisations(&state.db, &user.id).await? {
        let subscribed = crate::db::billing::stripe_link(&state.db, &organisation_id)
            .await?
            .is_some_and(|link| link.subscription_id.is_some());
        if subscribed {
            return Err(AccountError::SubscriptionRunning);
        }
    }
    let now = state.clock.now_ms();
    audit_account(state, user, "account.marked_for_deletion", None).await?;
    accounts::mark_for_deletion(&state.db, &user.id, now).await?;
    let date = crate::db::stats::day_of(now + DELETION_GRACE_MS);
    email_user(
        state,
        user,
        "Your HumanProof account will be deleted",
        "You asked us to delete your HumanProof account {email}. It will be deleted on {date}, with the organisations only you own and their projects, events and statistics. To keep it, sign in before then and choose “Keep my account”.\n",
        &[("email", &user.email), ("date", &date)],
    )
    .await;
    Ok(())
}

/// Keeps an account marked for deletion, with the token its right password gave; its owner
/// then signs in again (with a second factor if it has one).
pub async fn restore_account(state: &AppState, token: &str) -> Result<(), AccountError> {
    let now = state.clock.now_ms();
    let user_id = accounts::use_email_token(
        &state.db,
        &hash_secret(token),
        EmailTokenPurpose::RestoreAccount,
        now,
    )
    .await?
    .ok_or(AccountError::InvalidLink)?;
    accounts::restore(&state.db, &user_id, now).await?;
    if let Some(user) = accounts::find_user(&state.db, &user_id).await? {
        audit_account(state, &user, "account.kept", None).await?;
    }
    Ok(())
}

/// Deletes the accounts whose grace period is over, with the organisations only they own
/// (their projects leave the edge with the next publish), and tells each by email; the
/// number deleted.
pub async fn delete_due_accounts(state: &AppState) -> Result<usize, sqlx::Error> {
    let now = state.clock.now_ms();
    let due = accounts::due_for_deletion(&state.db, now - DELETION_GRACE_MS).await?;
    for user in &due {
        let deletion = accounts::delete_account(&state.db, user, now).await?;
        tracing::info!(
            organisations = deletion.organisations.len(),
            projects = deletion.site_keys,
            "an account was deleted"
        );
        email_user(
            state,
            user,
            "Your HumanProof account has been deleted",
            "Your HumanProof account {email} has been deleted, with the organisations only you owned and their projects, events and statistics. Stripe keeps the invoices it issued, and HumanProof keeps its records of VAT id checks for 10 years, as tax law requires.\n",
            &[("email", &user.email)],
        )
        .await;
    }
    if !due.is_empty() {
        state.publish_changes().await;
    }
    Ok(due.len())
}

/// Runs [`delete_due_accounts`] now and every hour after, for as long as the server runs.
pub async fn delete_due_accounts_hourly(state: AppState) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        let deleted = delete_due_accounts(&state).await;
        state
            .metrics
            .job_run(Job::AccountDeletion, deleted.is_ok(), state.clock.now_ms());
        if let Err(err) = deleted {
            tracing::warn!(error = %err, "account deletion failed; will retry next hour");
        }
    }
}

async fn check_current_password(
    state: &AppState,
    user: &User,
    password: &str,
) -> Result<(), AccountError> {
    let stored = accounts::password_hash(&state.db, &user.id).await?;
    if verify_or_waste_time(stored.as_deref(), password).await {
        Ok(())
    } else {
        Err(AccountError::WrongCredentials)
    }
}

/// Records an account-level security event in every organisation the user belongs to, so
/// each organisation's owners see it.
pub(crate) async fn audit_account(
    state: &AppState,
    user: &User,
    action: &str,
    target: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = state.clock.now_ms();
    for membership in orgs::memberships(&state.db, &user.id).await? {
        orgs::audit(
            &state.db,
            Some(&membership.organisation_id),
            &format!("user:{}", user.email),
            action,
            target,
            now,
        )
        .await?;
    }
    Ok(())
}

/// The user behind a (full) session cookie.
pub async fn session_user(state: &AppState, token: &str) -> Result<Option<User>, sqlx::Error> {
    accounts::session_user(&state.db, &hash_secret(token), false, state.clock.now_ms()).await
}

/// Ends a session.
pub async fn sign_out(state: &AppState, token: &str) -> Result<(), sqlx::Error> {
    accounts::delete_session(&state.db, &hash_secret(token)).await
}

/// Sends a reset link, in the account's language, if the address has an account; says
/// nothing either way, so the form cannot be used to find out who has one.
pub async fn request_password_reset(
    state: &AppState,
    email: &str,
    client_ip: IpAddr,
) -> Result<(), AccountError> {
    let now = state.clock.now_ms();
    take_attempt(
        state,
        &network_subject(state, "reset", client_ip),
        MAX_RESET_REQUESTS_PER_IP,
        now,
    )
    .await?;
    let Ok(email) = normalize_email(email) else {
        return Ok(());
    };
    take_attempt(
        state,
        &throttle_subject(state, "reset-email", &email),
        MAX_RESET_REQUESTS_PER_EMAIL,
        now,
    )
    .await?;
    let Some((user, _)) = accounts::find_user_by_email(&state.db, &email).await? else {
        return Ok(());
    };
    let token = new_token();
    accounts::insert_email_token(
        &state.db,
        &hash_secret(&token),
        &user.id,
        EmailTokenPurpose::ResetPassword,
        now,
        now + RESET_LINK_TTL_MS,
    )
    .await?;
    let link = format!("{}/reset-password?token={token}", state.web.public_url);
    let body = "Set a new password by opening this link within one hour. It works once:\n\n{link}\n\nIf you did not ask for this, ignore this message.";
    email_user(
        state,
        &user,
        "Reset your HumanProof password",
        body,
        &[("link", &link)],
    )
    .await;
    Ok(())
}

/// Whether a reset link would still work (to show the form, or say it is spent).
pub async fn reset_link_usable(state: &AppState, token: &str) -> Result<bool, sqlx::Error> {
    accounts::email_token_usable(
        &state.db,
        &hash_secret(token),
        EmailTokenPurpose::ResetPassword,
        state.clock.now_ms(),
    )
    .await
}

/// Uses a reset link: sets the new password, ends every session of the account and pauses
/// the passkeys added since the password was last set. Returns how many were paused.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    new_password: &str,
) -> Result<u64, AccountError> {
    check_password(new_password)?;
    let now = state.clock.now_ms();
    let user_id = accounts::use_email_token(
        &state.db,
        &hash_secret(token),
        EmailTokenPurpose::ResetPassword,
        now,
    )
    .await?
    .ok_or(AccountError::InvalidLink)?;
    let paused =
        accounts::reset_password(&state.db, &user_id, &hash_password(new_password).await, now)
            .await?;
    // Following the link proves the address too.
    accounts::mark_email_verified(&state.db, &user_id, now).await?;
    Ok(paused)
}

/// Changes the password of a signed-in user who knows the current one; their other sessions
/// end, and they are told by email in case it was not them.
pub async fn change_password(
    state: &AppState,
    user: &User,
    session_token: &str,
    current: &str,
    new_password: &str,
) -> Result<(), AccountError> {
    check_current_password(state, user, current).await?;
    check_password(new_password)?;
    let now = state.clock.now_ms();
    let hash = hash_password(new_password).await;
    accounts::change_password(&state.db, &user.id, &hash, &hash_secret(session_token), now).await?;
    audit_account(state, user, "account.password_changed", None).await?;
    email_user(
        state,
        user,
        "Your HumanProof password was changed",
        "The password of your HumanProof account {email} was changed, and every other session of it was signed out. If that was not you, reset your password now from the sign-in page and check your account's passkeys and two-factor settings.\n",
        &[("email", &user.email)],
    )
    .await;
    Ok(())
}

/// Starts moving the account to `new_email`, given the current password: a link goes to the
/// new address (following it proves the person reads it), valid for a day. An address
/// another account has gets a note saying so instead, and the form answers the same, so it
/// does not tell who has an account.
pub async fn request_email_change(
    state: &AppState,
    user: &User,
    password: &str,
    new_email: &str,
) -> Result<String, AccountError> {
    check_current_password(state, user, password).await?;
    let new_email = normalize_email(new_email)?;
    if new_email == user.email {
        return Err(AccountError::SameEmail);
    }
    let now = state.clock.now_ms();
    let lang = &user.language;
    let email = if accounts::find_user_by_email(&state.db, &new_email)
        .await?
        .is_some()
    {
        Email {
            to: new_email.clone(),
            subject: i18n::translate(lang, "Someone asked to move a HumanProof account to this address").to_owned(),
            body: i18n::translate(lang, "Someone signed in to a HumanProof account asked to move it to this address, which another HumanProof account already uses, so nothing was changed. If that was you, sign in with this address instead.\n").to_owned(),
            reply_to: None,
        }
    } else {
        let token = new_token();
        accounts::insert_email_change_token(
            &state.db,
            &hash_secret(&token),
            &user.id,
            &new_email,
            now,
            now + VERIFY_LINK_TTL_MS,
        )
        .await?;
        let link = format!(
            "{}/account/email/confirm?token={token}",
            state.web.public_url
        );
        Email {
            to: new_email.clone(),
            subject: i18n::translate(lang, "Confirm your new address for HumanProof").to_owned(),
            body: i18n::fill(
                i18n::translate(
                    lang,
                    "To move your HumanProof account from {old} to this address, open this link within a day. It works once:\n\n{link}\n\nIf you did not ask for this, ignore this message.\n",
                ),
                &[("old", &user.email), ("link", &link)],
            ),
            reply_to: None,
        }
    };
    deliver(state, &email).await;
    Ok(new_email)
}

/// Follows an email change link: the account moves to the new address, the old address is
/// told, and the audit log records it. Returns the new address.
pub async fn confirm_email_change(state: &AppState, token: &str) -> Result<String, AccountError> {
    let now = state.clock.now_ms();
    let (user_id, new_email) =
        accounts::use_email_change_token(&state.db, &hash_secret(token), now)
            .await?
            .ok_or(AccountError::InvalidLink)?;
    let Some(user) = accounts::find_user(&state.db, &user_id).await? else {
        return Err(AccountError::InvalidLink);
    };
    if !accounts::set_email(&state.db, &user_id, &new_email, now).await? {
        return Err(AccountError::InvalidLink);
    }
    email_user(
        state,
        &user,
        "Your HumanProof account moved to another address",
        "Your HumanProof account {old} now signs in as {new}, and its email goes there. If that was not you, reset the password from the sign-in page with the new address, or write to us.\n",
        &[("old", &user.email), ("new", &new_email)],
    )
    .await;
    let moved = User {
        email: new_email.clone(),
        ..user
    };
    audit_account(state, &moved, "account.email_changed", None).await?;
    Ok(new_email)
}

/// The signed-in user's sessions, and which of them is this one (`session_token`'s).
pub async fn sessions(
    state: &AppState,
    user: &User,
    session_token: &str,
) -> Result<(Vec<accounts::SessionSummary>, String), AccountError> {
    let sessions = accounts::sessions(&state.db, &user.id).await?;
    let this = hash_secret(session_token)[..16].to_owned();
    Ok((sessions, this))
}

/// Ends one of the user's other sessions (this one ends by signing out); whether it was
/// there.
pub async fn end_session(
    state: &AppState,
    user: &User,
    session_token: &str,
    handle: &str,
) -> Result<bool, AccountError> {
    if hash_secret(session_token).starts_with(handle) || handle.len() != 16 {
        return Ok(false);
    }
    let ended = accounts::end_session(&state.db, &user.id, handle).await?;
    if ended {
        audit_account(state, user, "account.session_ended", None).await?;
    }
    Ok(ended)
}

/// Email failures must not fail the action that sent it: the user can ask again.
async fn deliver(state: &AppState, email: &Email) {
    if let Err(err) = state.mailer.send(email).await {
        tracing::error!(error = %err, subject = %email.subject, "could not send email");
    }
}
