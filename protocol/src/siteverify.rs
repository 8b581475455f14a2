//! The body of a site backend's `POST /siteverify`, form-encoded or JSON as Turnstile's.
//!
//! It lives here, without I/O, so the control plane's handler and the fuzz target parse
//! requests with the same function.

use serde::Deserialize;

/// The request fields, from either encoding. Unknown fields are ignored; `remoteip` is
/// accepted for Turnstile compatibility and ignored, since tokens carry no IP and none is
/// ever stored.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct VerifyRequest {
    /// The project's backend secret.
    pub secret: Option<String>,
    /// The verification token the widget put into the form.
    pub response: Option<String>,
    /// Lets a retry of the same call get the first answer again.
    pub idempotency_key: Option<String>,
}

/// Reads the fields from JSON (when `content_type` says so) or form encoding (anything
/// else, as Turnstile's clients send either); `None` when the body is not of that encoding.
/// An empty form body parses to no fields, so the caller can name the missing one.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Option<VerifyRequest> {
    let content_type = content_type.unwrap_or_default().to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body).ok()
    } else if body.is_empty() {
        Some(VerifyRequest::default())
    } else {
        serde_urlencoded::from_bytes(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(secret: &str, response: &str, idempotency_key: Option<&str>) -> VerifyRequest {
        VerifyRequest {
            secret: Some(secret.into()),
            response: Some(response.into()),
            idempotency_key: idempotency_key.map(Into::into),
        }
    }

    #[test]
    fn forms_and_json_read_the_same_fields() {
        let form = parse(
            Some("application/x-www-form-urlencoded"),
            b"secret=hp_secret_a&response=hpv1.x.y&remoteip=203.0.113.9&idempotency_key=k%201",
        );
        assert_eq!(form, Some(request("hp_secret_a", "hpv1.x.y", Some("k 1"))));
        let json = parse(
            Some("Application/JSON; charset=utf-8"),
            br#"{"secret":"hp_secret_a","response":"hpv1.x.y","remoteip":"203.0.113.9","extra":[1]}"#,
        );
        assert_eq!(json, Some(request("hp_secret_a", "hpv1.x.y", None)));
    }

    #[test]
    fn a_missing_content_type_means_a_form() {
        assert_eq!(
            parse(None, b"secret=s&response=r"),
            Some(request("s", "r", None))
        );
        assert_eq!(
            parse(Some("text/plain"), b"secret=s&response=r"),
            Some(request("s", "r", None))
        );
    }

    #[test]
    fn empty_forms_have_no_fields_and_empty_json_is_refused() {
        assert_eq!(parse(None, b""), Some(VerifyRequest::default()));
        assert_eq!(parse(Some("application/json"), b""), None);
        assert_eq!(
            parse(Some("application/json"), b"{}"),
            Some(VerifyRequest::default())
        );
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_refused() {
        assert_eq!(parse(Some("application/json"), b"secret=s"), None);
        assert_eq!(parse(Some("application/json"), br#"{"secret":1}"#), None);
        assert_eq!(parse(Some("application/json"), b"null"), None);
        assert_eq!(parse(None, b"secret=a&secret=b"), None);
    }
}
