//! Verifying a site backend's token: which project the secret names, whether the token is
//! genuine, unexpired and that project's, and claiming it so it verifies once. A retry that
//! repeats the first call's idempotency key gets the first answer again, marked replayed.
//!
//! The answer is Turnstile's shape ([`VerifyResponse`]), with its HTTP status, so that
//! existing Turnstile client code keeps working; the handler in [`crate::routes::siteverify`]
//! only reads and checks the request.

use axum::Json;
use axum::http::StatusCode;
use humanproof_protocol::token::{MAX_TOKEN_LEN, TokenError, peek_unverified};
use humanproof_protocol::{Reason, RiskAssessment, VerificationClaims};
use serde::{Deserialize, Serialize};

use crate::db::projects;
use crate::db::siteverify::{Claim, ClaimRequest, DUPLICATE, VerificationRecord};
use crate::state::AppState;

/// An answer and the status it is sent with.
pub type Answer = (StatusCode, Json<VerifyResponse>);

/// Turnstile's answer shape plus our extras under `humanproof`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// Whether the token is genuine, unexpired, unused and this project's.
    pub success: bool,
    /// When the challenge was solved (ISO 8601).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_ts: Option<String>,
    /// Hostname of the page the widget ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Turnstile error codes; empty on success.
    #[serde(rename = "error-codes")]
    pub error_codes: Vec<String>,
    /// Widget action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Customer data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdata: Option<String>,
    /// HumanProof's own details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub humanproof: Option<Extras>,
}

/// What we add beyond Turnstile's fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Extras {
    /// Our precise reason when verification failed (e.g. `expired`, `scope_mismatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Site key the token was issued for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_key: Option<String>,
    /// The redeemed challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    /// Difficulty solved (SHA-256 work).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<u32>,
    /// Sub-challenges solved (SHA-256 work).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_count: Option<u32>,
    /// Squarings of the RSW time-lock puzzle solved instead of SHA-256 work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub squarings: Option<u32>,
    /// The edge's risk assessment of the challenge start: score, reasons with their points,
    /// decision, preset and mode, for the site backend to act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskAssessment>,
    /// `true` on an answer repeated for a retry with the first call's `idempotency_key`: the
    /// token was verified before, by that call. Absent on a first answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// Verifies `token` for the project whose backend secret is `secret`, once, and records the
/// outcome for the project's statistics.
pub async fn verify(
    state: &AppState,
    secret: &str,
    token: &str,
    idempotency_key: Option<&str>,
) -> Answer {
    let project = match projects::find_by_secret(&state.db, secret, state.clock.now_ms()).await {
        Ok(Some(project)) => project,
        Ok(None) => return failure(StatusCode::UNAUTHORIZED, "invalid-input-secret", None),
        Err(err) => return internal_error(&err),
    };

    let now = state.clock.now_ms();
    match check_token(state, &project, token, idempotency_key, now).await {
        Ok(Checked::Claimed(answer)) => answer,
        Ok(Checked::Refused(answer)) => {
            let record = VerificationRecord {
                project_id: project.id.clone(),
                at: now,
                error_code: answer.1.error_codes.first().cloned(),
            };
            // Analytics must not turn a correct answer into an error.
            if let Err(err) = state.db.siteverify().record(record).await {
                tracing::warn!(error = %err, "could not record verification analytics");
            }
            answer
        }
        Err(err) => internal_error(&err),
    }
}

/// What checking a token came to.
enum Checked {
    /// Refused before any claim (bad, expired or another project's token): not counted yet.
    Refused(Answer),
    /// Claimed, or found claimed: counted with the claim.
    Claimed(Answer),
}

async fn check_token(
    state: &AppState,
    project: &projects::Project,
    token: &str,
    idempotency_key: Option<&str>,
    now: i64,
) -> Result<Checked, sqlx::Error> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(Checked::Refused(failure(
            StatusCode::OK,
            "invalid-input-response",
            Some(Reason::InvalidToken.as_str()),
        )));
    }
    let key = state.master.project_key(&project.id, project.key_version);
    let claims: VerificationClaims = match key.open(token, now) {
        Ok(claims) => claims,
        Err(TokenError::Expired) => {
            return Ok(Checked::Refused(failure(
                StatusCode::OK,
                DUPLICATE,
                Some(Reason::Expired.as_str()),
            )));
        }
        Err(TokenError::Malformed | TokenError::BadSignature) => {
            // Say precisely when the token is genuine-looking but another project's.
            let other_project = peek_unverified::<VerificationClaims>(token)
                .is_ok_and(|claims| claims.sk != project.site_key);
            let reason = if other_project {
                Reason::ScopeMismatch
            } else {
                Reason::InvalidToken
            };
            return Ok(Checked::Refused(failure(
                StatusCode::OK,
                "invalid-input-response",
                Some(reason.as_str()),
            )));
        }
    };
    if claims.sk != project.site_key {
        return Ok(Checked::Refused(failure(
            StatusCode::OK,
            "invalid-input-response",
            Some(Reason::ScopeMismatch.as_str()),
        )));
    }

    let answer = VerifyResponse {
        success: true,
        challenge_ts: Some(iso8601(claims.iat)),
        hostname: Some(claims.host.clone()),
        error_codes: vec![],
        action: claims.act.clone(),
        cdata: claims.cd.clone(),
        humanproof: Some(Extras {
            reason: None,
            site_key: Some(claims.sk.clone()),
            challenge_id: Some(claims.cid.clone()),
            // The work done: SHA-256's count and difficulty, or an RSW puzzle's squarings.
            difficulty: claims.rsw.is_none().then_some(claims.d),
            challenge_count: claims.rsw.is_none().then_some(claims.c),
            squarings: claims.rsw,
            risk: claims.risk.clone(),
            replayed: false,
        }),
    };
    // Only a retry with the caller's key can be given this answer again; without a key
    // there is nothing to store (and an answer is a third of a claim's row).
    let stored =
        idempotency_key.map(|_| serde_json::to_string(&answer).expect("answers serialize"));
    let claim = ClaimRequest {
        token_id: claims.jti,
        project_id: project.id.clone(),
        idempotency_key: idempotency_key.map(str::to_owned),
        response: stored,
        expires_at: claims.exp,
        at: now,
    };
    let claimed = state.db.siteverify().claim(claim).await?;
    let answer = match claimed {
        Claim::Fresh => (StatusCode::OK, Json(answer)),
        Claim::Used { response, .. } if claimed.succeeds_for(idempotency_key) => {
            let mut first_answer: VerifyResponse = serde_json::from_str(&response)
                .map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
            first_answer
                .humanproof
                .get_or_insert_with(Extras::default)
                .replayed = true;
            (StatusCode::OK, Json(first_answer))
        }
        Claim::Used { .. } => failure(StatusCode::OK, DUPLICATE, Some("already_verified")),
    };
    Ok(Checked::Claimed(answer))
}

fn internal_error(err: &sqlx::Error) -> Answer {
    tracing::error!(error = %err, "siteverify failed");
    failure(StatusCode::INTERNAL_SERVER_ERROR, "internal-error", None)
}

fn iso8601(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A refusal: `code` for Turnstile clients, `reason` (ours) under `humanproof`.
pub fn failure(status: StatusCode, code: &'static str, reason: Option<&str>) -> Answer {
    (
        status,
        Json(VerifyResponse {
            success: false,
            challenge_ts: None,
            hostname: None,
            error_codes: vec![code.to_owned()],
            action: None,
            cdata: None,
            humanproof: reason.map(|reason| Extras {
                reason: Some(reason.to_owned()),
                ..Extras::default()
            }),
        }),
    )
}
