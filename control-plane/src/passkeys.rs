//! Passkeys (WebAuthn, through webauthn-rs): registering them from the account page, signing
//! in with one and no password (a discoverable credential), and using one as the second
//! factor after a password.
//!
//! Each ceremony has two requests. The first returns the browser's options and a ceremony
//! id; the server half waits in the database for five minutes and is taken once by the
//! second request, so a challenge cannot be answered twice. The relying party is the
//! public URL's host, which WebAuthn requires to be a domain name (`localhost` locally,
//! never an IP address).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};

use crate::accounts::{self, AccountError};
use crate::db::accounts::User;
use crate::db::passkeys::{self, PasskeySummary};
use crate::error::ApiError;
use crate::i18n;
use crate::state::AppState;

/// How long a ceremony's second request may take.
pub const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;

const REGISTER: &str = "register";
const SIGN_IN: &str = "sign_in";
const SECOND_FACTOR: &str = "second_factor";

/// What the browser needs to start a ceremony.
#[derive(Debug, Serialize)]
pub struct Started {
    /// Sent back with the finish request.
    pub ceremony: String,
    /// `navigator.credentials` options, binary fields in base64url.
    pub options: Value,
}

/// The finish request.
#[derive(Debug, Deserialize)]
pub struct Finish {
    /// The id from [`Started`].
    pub ceremony: String,
    /// The browser's credential, binary fields in base64url.
    pub credential: Value,
    /// A name for a new passkey.
    #[serde(default)]
    pub name: String,
}

fn unavailable() -> ApiError {
    ApiError::Invalid { field: "passkey", message: "Passkeys need the dashboard on a domain name (for example localhost), not an IP address.".into() }
}

fn refused() -> ApiError {
    ApiError::Invalid {
        field: "credential",
        message: "The passkey could not be verified. Try again.".into(),
    }
}

fn webauthn(state: &AppState) -> Result<Webauthn, ApiError> {
    let origin = Url::parse(&state.web.public_url).map_err(|_| unavailable())?;
    let host = origin.host_str().ok_or_else(unavailable)?.to_owned();
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Err(unavailable());
    }
    WebauthnBuilder::new(&host, &origin)
        .and_then(|builder| builder.rp_name("HumanProof").build())
        .map_err(|_| unavailable())
}

/// The WebAuthn user handle: the user's random 128-bit id.
fn user_handle(user: &User) -> Uuid {
    hex::decode(&user.id)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .unwrap_or_else(Uuid::nil)
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("webauthn-rs types serialise")
}

fn credential_id(passkey: &Passkey) -> String {
    serde_json::to_value(passkey.cred_id())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn stored_passkeys(state: &AppState, user_id: &str) -> Result<Vec<Passkey>, ApiError> {
    Ok(passkeys::credentials(&state.db, user_id)
        .await?
        .iter()
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect())
}

async fn park<T: Serialize>(
    state: &AppState,
    user: Option<&str>,
    kind: &str,
    server_half: &T,
    options: Value,
) -> Result<Started, ApiError> {
    let expires = state.clock.now_ms() + CEREMONY_TTL_MS;
    let ceremony =
        passkeys::start_ceremony(&state.db, user, kind, &to_json(server_half), expires).await?;
    Ok(Started { ceremony, options })
}

async fn take<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    id: &str,
    kind: &str,
) -> Result<(Option<String>, T), ApiError> {
    let (user, json) = passkeys::take_ceremony(&state.db, id, kind, state.clock.now_ms())
        .await?
        .ok_or(ApiError::Invalid {
            field: "ceremony",
            message: "This passkey prompt expired. Try again.".into(),
        })?;
    Ok((user, serde_json::from_str(&json).map_err(|_| refused())?))
}

/// A passkey is a way in: only an owner with a confirmed address who gave their password
/// (or a second factor) within the last minutes may add or confirm one, so a stolen session
/// alone cannot plant a lasting way back into the account.
async fn may_add_sign_in_factor(
    state: &AppState,
    user: &User,
    session_token: &str,
) -> Result<(), ApiError> {
    if !user.email_verified {
        return Err(ApiError::Invalid {
            field: "passkey",
            message: "Confirm your email address before adding a passkey.".into(),
        });
    }
    if !accounts::recently_authenticated(state, session_token).await? {
        return Err(ApiError::Invalid {
            field: "password",
            message: "Confirm it is you with your password first, then add the passkey.".into(),
        });
    }
    Ok(())
}

/// Starts registering a passkey for the signed-in user. The credential is made
/// discoverable, so it can later sign in without a password.
pub async fn start_registration(
    state: &AppState,
    user: &User,
    session_token: &str,
) -> Result<Started, ApiError> {
    may_add_sign_in_factor(state, user, session_token).await?;
    let webauthn = webauthn(state)?;
    let existing: Vec<_> = stored_passkeys(state, &user.id)
        .await?
        .iter()
        .map(|p| p.cred_id().clone())
        .collect();
    let (options, server_half) = webauthn
        .start_passkey_registration(user_handle(user), &user.email, &user.email, Some(existing))
        .map_err(|_| unavailable())?;
    let mut options = serde_json::to_value(options).expect("options serialise");
    let selection = &mut options["publicKey"]["authenticatorSelection"];
    selection["residentKey"] = "required".into();
    selection["requireResidentKey"] = true.into();
    park::<PasskeyRegistration>(state, Some(&user.id), REGISTER, &server_half, options).await
}

/// Verifies the new credential and stores it; the owner is told by email.
pub async fn finish_registration(
    state: &AppState,
    user: &User,
    session_token: &str,
    finish: Finish,
) -> Result<(), ApiError> {
    may_add_sign_in_factor(state, user, session_token).await?;
    let (owner, server_half): (_, PasskeyRegistration) =
        take(state, &finish.ceremony, REGISTER).await?;
    if owner.as_deref() != Some(user.id.as_str()) {
        return Err(refused());
    }
    let name = finish.name.trim();
    let name = if name.is_empty() { "Passkey" } else { name };
    if name.chars().count() > 100 {
        return Err(ApiError::Invalid {
            field: "name",
            message: "Give the passkey a name of at most 100 characters.".into(),
        });
    }
    let credential: RegisterPublicKeyCredential =
        serde_json::from_value(finish.credential).map_err(|_| refused())?;
    let passkey = webauthn(state)?
        .finish_passkey_registration(&credential, &server_half)
        .map_err(|_| refused())?;
    passkeys::insert(
        &state.db,
        &credential_id(&passkey),
        &user.id,
        name,
        &to_json(&passkey),
        state.clock.now_ms(),
    )
    .await?;
    accounts::audit_account(state, user, "account.passkey_added", Some(name)).await?;
    notify_passkey(state, user, name).await;
    Ok(())
}

async fn notify_passkey(state: &AppState, user: &User, name: &str) {
    let factor = i18n::fill(
        i18n::translate(&user.language, "a passkey named “{name}”"),
        &[("name", name)],
    );
    accounts::notify_factor_added(state, user, &factor).await;
}

/// Lets a passkey that a password reset paused sign in again, once its owner confirmed it
/// is theirs (with the same recent proof that adding one needs).
pub async fn confirm(
    state: &AppState,
    user: &User,
    session_token: &str,
    id: &str,
) -> Result<(), ApiError> {
    may_add_sign_in_factor(state, user, session_token).await?;
    let name = passkeys::list(&state.db, &user.id)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .map(|p| p.name);
    if !passkeys::unpause(&state.db, &user.id, id).await? {
        return Err(ApiError::NotFound);
    }
    accounts::audit_account(state, user, "account.passkey_confirmed", name.as_deref()).await?;
    notify_passkey(state, user, name.as_deref().unwrap_or_default()).await;
    Ok(())
}

/// Starts a passwordless sign-in: the browser offers the passkeys it has for this site.
pub async fn start_sign_in(state: &AppState) -> Result<Started, ApiError> {
    let (options, server_half) = webauthn(state)?
        .start_discoverable_authentication()
        .map_err(|_| unavailable())?;
    let options = serde_json::to_value(options).expect("options serialise");
    park::<DiscoverableAuthentication>(state, None, SIGN_IN, &server_half, options).await
}

/// Finishes a passwordless sign-in: the user and a new session token.
pub async fn finish_sign_in(state: &AppState, finish: Finish) -> Result<(User, String), ApiError> {
    let (_, server_half): (_, DiscoverableAuthentication) =
        take(state, &finish.ceremony, SIGN_IN).await?;
    let credential: PublicKeyCredential =
        serde_json::from_value(finish.credential).map_err(|_| refused())?;
    let webauthn = webauthn(state)?;
    let (handle, _) = webauthn
        .identify_discoverable_authentication(&credential)
        .map_err(|_| refused())?;
    let user_id = hex::encode(handle.as_bytes());
    let user = crate::db::accounts::find_user(&state.db, &user_id)
        .await?
        .ok_or_else(refused)?;
    if user.status != crate::db::accounts::UserStatus::Active {
        return Err(ApiError::Forbidden("account_closed"));
    }
    let stored = stored_passkeys(state, &user.id).await?;
    let keys: Vec<DiscoverableKey> = stored.iter().map(DiscoverableKey::from).collect();
    let result = webauthn
        .finish_discoverable_authentication(&credential, server_half, &keys)
        .map_err(|_| refused())?;
    record_use(state, stored, &result).await?;
    let token = accounts::start_session(state, &user).await?;
    Ok((user, token))
}

/// Starts using a passkey as the second factor of a password sign-in.
pub async fn start_second_factor(
    state: &AppState,
    session_token: &str,
) -> Result<Started, ApiError> {
    let user = accounts::second_factor_user(state, session_token)
        .await?
        .ok_or(ApiError::Unauthorized("sign_in_again"))?;
    let stored = stored_passkeys(state, &user.id).await?;
    if stored.is_empty() {
        return Err(ApiError::Invalid {
            field: "passkey",
            message: "This account has no passkey.".into(),
        });
    }
    let (options, server_half) = webauthn(state)?
        .start_passkey_authentication(&stored)
        .map_err(|_| unavailable())?;
    let options = serde_json::to_value(options).expect("options serialise");
    park::<PasskeyAuthentication>(state, Some(&user.id), SECOND_FACTOR, &server_half, options).await
}

/// Finishes the second factor with a passkey; the session becomes a full one.
pub async fn finish_second_factor(
    state: &AppState,
    session_token: &str,
    finish: Finish,
) -> Result<(), ApiError> {
    let user = accounts::second_factor_user(state, session_token)
        .await?
        .ok_or(ApiError::Unauthorized("sign_in_again"))?;
    let (owner, server_half): (_, PasskeyAuthentication) =
        take(state, &finish.ceremony, SECOND_FACTOR).await?;
    if owner.as_deref() != Some(user.id.as_str()) {
        return Err(refused());
    }
    let credential: PublicKeyCredential =
        serde_json::from_value(finish.credential).map_err(|_| refused())?;
    let result = webauthn(state)?
        .finish_passkey_authentication(&credential, &server_half)
        .map_err(|_| refused())?;
    record_use(state, stored_passkeys(state, &user.id).await?, &result).await?;
    accounts::complete_second_factor_with_passkey(state, session_token)
        .await
        .map_err(|err| match err {
            AccountError::Database(db) => ApiError::Database(db),
            _ => ApiError::Unauthorized("sign_in_again"),
        })
}

/// Saves the credential whose counter the sign-in moved.
async fn record_use(
    state: &AppState,
    stored: Vec<Passkey>,
    result: &webauthn_rs::prelude::AuthenticationResult,
) -> Result<(), ApiError> {
    for mut passkey in stored {
        if passkey.update_credential(result).is_some() {
            passkeys::record_use(
                &state.db,
                &credential_id(&passkey),
                &to_json(&passkey),
                state.clock.now_ms(),
            )
            .await?;
        }
    }
    Ok(())
}

/// The user's passkeys, oldest first.
pub async fn list(state: &AppState, user: &User) -> Result<Vec<PasskeySummary>, ApiError> {
    Ok(passkeys::list(&state.db, &user.id).await?)
}

/// Removes one of the user's passkeys.
pub async fn delete(state: &AppState, user: &User, id: &str) -> Result<(), ApiError> {
    if !passkeys::delete(&state.db, &user.id, id).await? {
        return Err(ApiError::NotFound);
    }
    accounts::audit_account(state, user, "account.passkey_removed", None).await?;
    Ok(())
}
