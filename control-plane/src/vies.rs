//! EU VAT ids and the European Commission's VIES service that says whether one is registered.
//!
//! [`VatId::parse`] turns what a customer typed into the form VIES and Stripe both take
//! (country prefix, then the number; `EL` for Greece), refusing what is plainly not a VAT id
//! before anything is asked. [`Vies::check`] asks VIES's REST API and sorts its answer into
//! three outcomes: valid, invalid, or down. VIES relays each question to the member state's
//! own register, which is often unavailable or busy; such an answer says nothing about the
//! number, so it is always [`Outcome::Down`] and never [`Outcome::Invalid`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// VIES's REST API, as the European Commission publishes it.
pub const DEFAULT_API_BASE: &str = "https://ec.europa.eu/taxation_customs/vies/rest-api";

/// How long one check may take: VIES waits on the member state's register, and a check that
/// takes longer than this counts as down and is retried later.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The prefixes VIES answers for: the EU member states under their VAT prefixes (Greece is
/// `EL`, not its ISO code `GR`) and `XI`, Northern Ireland's, which VIES also covers.
pub const PREFIXES: [&str; 28] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "XI",
];

/// A VAT id in its normal form: an EU prefix and 2 to 12 letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VatId {
    prefix: &'static str,
    number: String,
}

impl VatId {
    /// Reads a VAT id as people write it (`de 123.456.789`, `GR-123456789`), or `None` when
    /// it cannot be one: no EU prefix, characters other than letters and digits once spaces,
    /// dots and dashes are gone, a number shorter than 2 or longer than 12, or no digit.
    pub fn parse(input: &str) -> Option<Self> {
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '.' | '-'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let (prefix, number) = compact.split_at_checked(2)?;
        // People write Greek ids with the ISO code; VIES and Stripe want EL.
        let prefix = if prefix == "GR" { "EL" } else { prefix };
        let prefix = PREFIXES.into_iter().find(|known| *known == prefix)?;
        let plausible = (2..=12).contains(&number.len())
            && number.chars().all(|c| c.is_ascii_alphanumeric())
            && number.chars().any(|c| c.is_ascii_digit());
        plausible.then(|| Self {
            prefix,
            number: number.to_owned(),
        })
    }

    /// The country prefix (`EL` for Greece).
    pub fn prefix(&self) -> &str {
        self.prefix
    }

    /// The number without its prefix.
    pub fn number(&self) -> &str {
        &self.number
    }
}

impl std::fmt::Display for VatId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.prefix, self.number)
    }
}

/// What VIES said about a VAT id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Registered for intra-EU trade.
    Valid(Registration),
    /// Not registered (or, per VIES, not a number that country issues).
    Invalid,
    /// No answer about the number: VIES or the member state's register is unavailable or
    /// busy, the call timed out or failed. What happened, for the audit trail.
    Down(String),
}

/// What VIES returns for a valid id: the proof that it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The consultation number (`requestIdentifier`): given only when the request names a
    /// requester, and what a tax auditor asks for.
    pub consultation_number: Option<String>,
    /// The trader's name as the register has it (`---` when the member state does not share it).
    pub name: Option<String>,
    /// The trader's address, likewise.
    pub address: Option<String>,
    /// VIES's own date of the check.
    pub request_date: Option<String>,
}

/// The VIES client: the API's base URL and, optionally, the operator's own VAT id as the
/// requester, without which VIES returns no consultation number.
#[derive(Debug, Clone)]
pub struct Vies {
    http: reqwest::Client,
    base: String,
    requester: Option<VatId>,
}

/// The body of `POST /check-vat-number`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckRequest<'a> {
    country_code: &'a str,
    vat_number: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    requester_member_state_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requester_number: Option<&'a str>,
}

/// Its answer: a result, or `actionSucceed: false` with error codes (which VIES sends with
/// status 200 as well as with 4xx and 5xx).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckAnswer {
    valid: Option<bool>,
    request_date: Option<String>,
    request_identifier: Option<String>,
    name: Option<String>,
    address: Option<String>,
    #[serde(default)]
    error_wrappers: Vec<ErrorWrapper>,
}

#[derive(Debug, Deserialize)]
struct ErrorWrapper {
    error: String,
}

/// The one VIES error that is about the number itself: its form is wrong for its country.
/// Every other code (`MS_UNAVAILABLE`, `SERVICE_UNAVAILABLE`, `MS_MAX_CONCURRENT_REQ`,
/// `TIMEOUT`, `INVALID_REQUESTER_INFO`…) leaves the number unchecked.
const INVALID_INPUT: &str = "INVALID_INPUT";

impl Vies {
    /// A client for the API at `base` (VIES's, or the local stand-in's), asking as
    /// `requester` when one is given.
    pub fn new(base: &str, requester: Option<VatId>) -> Self {
        let http = crate::http::client_builder()
            .timeout(CHECK_TIMEOUT)
            .build()
            .expect("a TLS provider is installed and the system roots load");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            requester,
        }
    }

    /// Asks VIES about `id`.
    pub async fn check(&self, id: &VatId) -> Outcome {
        let request = CheckRequest {
            country_code: id.prefix(),
            vat_number: id.number(),
            requester_member_state_code: self.requester.as_ref().map(VatId::prefix),
            requester_number: self.requester.as_ref().map(VatId::number),
        };
        let sent = self
            .http
            .post(format!("{}/check-vat-number", self.base))
            .json(&request)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return Outcome::Down("timeout".into()),
            Err(err) => return Outcome::Down(format!("unreachable: {err}")),
        };
        let status = response.status();
        match response.json::<CheckAnswer>().await {
            Ok(answer) => classify(status.as_u16(), answer),
            Err(_) => Outcome::Down(format!("HTTP {}: not a VIES answer", status.as_u16())),
        }
    }
}

fn classify(status: u16, answer: CheckAnswer) -> Outcome {
    if let Some(first) = answer.error_wrappers.first() {
        return if answer
            .error_wrappers
            .iter()
            .any(|e| e.error == INVALID_INPUT)
        {
            Outcome::Invalid
        } else {
            Outcome::Down(first.error.clone())
        };
    }
    match answer.valid {
        Some(true) if status < 300 => Outcome::Valid(Registration {
            consultation_number: answer.request_identifier.filter(|id| !id.is_empty()),
            name: answer.name,
            address: answer.address,
            request_date: answer.request_date,
        }),
        Some(false) if status < 300 => Outcome::Invalid,
        _ => Outcome::Down(format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_as_people_write_them() {
        let id = VatId::parse(" de 123.456-789 ").unwrap();
        assert_eq!((id.prefix(), id.number()), ("DE", "123456789"));
        assert_eq!(id.to_string(), "DE123456789");
        assert_eq!(
            VatId::parse("GR094014201").unwrap().to_string(),
            "EL094014201"
        );
        assert_eq!(
            VatId::parse("el094014201").unwrap().to_string(),
            "EL094014201"
        );
        assert_eq!(
            VatId::parse("NL123456789B01").unwrap().number(),
            "123456789B01"
        );
        assert_eq!(VatId::parse("XI123456789").unwrap().prefix(), "XI");
        for bad in [
            "",
            "D",
            "DE",
            "DE1",
            "US123456789",
            "GB123456789",
            "DE12345678901234",
            "DE1234_5678",
            "DEABCDEFGH",
            "DE 12345678é",
            "123456789",
        ] {
            assert_eq!(VatId::parse(bad), None, "{bad:?}");
        }
    }

    fn answer(json: &str) -> CheckAnswer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_an_answer_about_the_number_is_valid_or_invalid() {
        let valid = answer(
            r#"{"countryCode":"DE","vatNumber":"1","requestDate":"2026-11-30+01:00","valid":true,
                "requestIdentifier":"WAPIAAAAZ","name":"ACME","address":"Street 1"}"#,
        );
        assert_eq!(
            classify(200, valid),
            Outcome::Valid(Registration {
                consultation_number: Some("WAPIAAAAZ".into()),
                name: Some("ACME".into()),
                address: Some("Street 1".into()),
                request_date: Some("2026-11-30+01:00".into()),
            })
        );
        assert_eq!(
            classify(200, answer(r#"{"valid":false}"#)),
            Outcome::Invalid
        );
        let invalid_input =
            r#"{"actionSucceed":false,"errorWrappers":[{"error":"INVALID_INPUT"}]}"#;
        assert_eq!(classify(400, answer(invalid_input)), Outcome::Invalid);
        for code in [
            "MS_UNAVAILABLE",
            "SERVICE_UNAVAILABLE",
            "MS_MAX_CONCURRENT_REQ",
            "TIMEOUT",
        ] {
            for status in [200, 500] {
                let body =
                    format!(r#"{{"actionSucceed":false,"errorWrappers":[{{"error":"{code}"}}]}}"#);
                assert_eq!(
                    classify(status, answer(&body)),
                    Outcome::Down(code.into()),
                    "{status}"
                );
            }
        }
        assert_eq!(
            classify(503, answer(r#"{"valid":false}"#)),
            Outcome::Down("HTTP 503".into())
        );
        assert_eq!(
            classify(200, answer("{}")),
            Outcome::Down("HTTP 200".into())
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_down_not_invalid() {
        // Port 9 (discard) on loopback: nothing listens there.
        let vies = Vies::new("http://127.0.0.1:9", None);
        let id = VatId::parse("DE123456789").unwrap();
        assert!(matches!(vies.check(&id).await, Outcome::Down(_)));
    }
}
