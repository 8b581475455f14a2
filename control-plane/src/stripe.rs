//! Stripe, as billing talks to it: webhook events checked against their signature, a
//! subscription's current state read back from Stripe's API, and the customer's EU VAT id.
//!
//! Events can arrive twice, late or out of order, so billing never applies what an event
//! says: it reads the subscription the event names from the API and applies that. The API
//! client is `async-stripe`; its base URL is configurable so that tests and `humanproof dev`
//! talk to the local stand-in (`local::stripe_standin`) through the very same code.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::subscription::RetrieveSubscription;
use stripe_billing::tax_id::{CreateCustomerTaxId, CreateCustomerTaxIdType, DeleteCustomerTaxId};
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};
use subtle::ConstantTimeEq as _;

/// How far a webhook's signed timestamp may be from now, as Stripe's own libraries allow.
pub const WEBHOOK_TOLERANCE_S: i64 = 300;

/// Stripe's API and the secret its webhooks are signed with.
#[derive(Clone)]
pub struct Stripe {
    client: stripe::Client,
    webhook_secret: String,
    checkout_origin: String,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stripe { .. }")
    }
}

/// Why a webhook delivery was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// No `Stripe-Signature` header, or one without a timestamp and a `v1` signature.
    #[error("missing or malformed Stripe-Signature header")]
    MissingSignature,
    /// No `v1` signature matches, or the timestamp is out of tolerance.
    #[error("the signature does not match")]
    BadSignature,
    /// Signed, but not an event.
    #[error("the body is not a Stripe event")]
    NotAnEvent,
}

/// A webhook event: what billing needs of its envelope and object.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    /// `evt_…`: events are applied once by this id.
    pub id: String,
    /// e.g. `customer.subscription.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When Stripe created the event, Unix seconds.
    pub created: i64,
    /// The event's data.
    pub data: EventData,
}

/// An event's `data`.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The object the event is about (a Checkout Session, a subscription, an invoice…).
    pub object: EventObject,
}

/// The fields of an event's object that name what billing reads back.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventObject {
    /// The object's id.
    #[serde(default)]
    pub id: Option<String>,
    /// What kind of object it is (`checkout.session`, `subscription`, `invoice`, `customer`).
    #[serde(default)]
    pub object: Option<String>,
    /// A Checkout Session's reference: the organisation id HumanProof gave it.
    #[serde(default)]
    pub client_reference_id: Option<String>,
    /// The customer, on a session, subscription or invoice.
    #[serde(default)]
    pub customer: Option<String>,
    /// The subscription, on a session or an invoice.
    #[serde(default)]
    pub subscription: Option<String>,
    /// A customer's email.
    #[serde(default)]
    pub email: Option<String>,
}

/// A subscription as Stripe has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// `sub_…`.
    pub id: String,
    /// `cus_…`.
    pub customer: String,
    /// Stripe's status: `active`, `trialing`, `past_due`, `unpaid`, `canceled`…
    pub status: String,
    /// The prices subscribed to.
    pub price_ids: Vec<String>,
    /// When the current period ends, Unix seconds (the latest of its items').
    pub current_period_end: Option<i64>,
    /// The organisation HumanProof put in the subscription's metadata, if any.
    pub organisation_id: Option<String>,
}

/// What a Checkout Session for a subscription is opened with.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    /// The price subscribed to.
    pub price: &'a str,
    /// The organisation it pays for: the session's reference, and metadata on the session and
    /// on the subscription it creates.
    pub organisation_id: &'a str,
    /// The organisation's Stripe customer, if it has one; otherwise Stripe makes one.
    pub customer: Option<&'a str>,
    /// Prefilled for a new customer: the member who buys.
    pub customer_email: &'a str,
    /// Where Stripe sends the buyer after paying.
    pub success_url: String,
    /// Where Stripe sends the buyer who gives up.
    pub cancel_url: String,
}

/// Metadata key under which checkout records the organisation on the subscription.
pub const ORGANISATION_METADATA: &str = "organisation_id";

impl Stripe {
    /// A client for `api_base` (Stripe's, or the local stand-in's) with the secret key, and
    /// the webhook signing secret.
    pub fn new(secret_key: &str, webhook_secret: &str, api_base: &str) -> Result<Self, String> {
        let client = stripe::ClientBuilder::new(secret_key)
            .url(api_base)
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|err| format!("Stripe client: {err}"))?;
        // Stripe's API answers on api.stripe.com and its checkout pages on
        // checkout.stripe.com; the stand-in serves both itself.
        let checkout_origin = if api_base.contains("://api.stripe.com") {
            "https://checkout.stripe.com".to_owned()
        } else {
            let (scheme, rest) = api_base.split_once("://").unwrap_or(("https", api_base));
            format!("{scheme}://{}", rest.split('/').next().unwrap_or_default())
        };
        Ok(Self {
            client,
            webhook_secret: webhook_secret.to_owned(),
            checkout_origin,
        })
    }

    /// Where Checkout Sessions send buyers: the pages that must accept the billing page's
    /// redirect (its `form-action`).
    pub fn checkout_origin(&self) -> &str {
        &self.checkout_origin
    }

    /// The event in `payload` if `signature` (the `Stripe-Signature` header) signs it with
    /// the webhook secret within [`WEBHOOK_TOLERANCE_S`] of `now_s`. Any matching `v1`
    /// signature is accepted, so a secret can be rotated while Stripe signs with both.
    pub fn verify_webhook(
        &self,
        payload: &[u8],
        signature: &str,
        now_s: i64,
    ) -> Result<WebhookEvent, WebhookError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in signature.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
                Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
                _ => {}
            }
        }
        let Some(timestamp) = timestamp.filter(|_| !signatures.is_empty()) else {
            return Err(WebhookError::MissingSignature);
        };
        if timestamp.abs_diff(now_s) > WEBHOOK_TOLERANCE_S.unsigned_abs() {
            return Err(WebhookError::BadSignature);
        }
        let expected = sign(&self.webhook_secret, timestamp, payload);
        if !signatures
            .iter()
            .any(|given| bool::from(given.as_slice().ct_eq(&expected)))
        {
            return Err(WebhookError::BadSignature);
        }
        serde_json::from_slice(payload).map_err(|_| WebhookError::NotAnEvent)
    }

    /// Opens a Checkout Session for a subscription; the URL to send the buyer to.
    pub async fn checkout(&self, request: &CheckoutRequest<'_>) -> Result<String, String> {
        let metadata = HashMap::from([(
            ORGANISATION_METADATA.to_owned(),
            request.organisation_id.to_owned(),
        )]);
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(request.price.to_owned());
        item.quantity = Some(1);
        let mut subscription_data = CreateCheckoutSessionSubscriptionData::new();
        subscription_data.metadata = Some(metadata.clone());
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .line_items(vec![item])
            .client_reference_id(request.organisation_id)
            .metadata(metadata)
            .subscription_data(subscription_data)
            .success_url(request.success_url.as_str())
            .cancel_url(request.cancel_url.as_str());
        // Stripe refuses a customer and an email together.
        let session = match request.customer {
            Some(customer) => session.customer(customer),
            None => session.customer_email(request.customer_email),
        };
        let session = session
            .send(&self.client)
            .await
            .map_err(|err| format!("Stripe checkout: {err}"))?;
        session
            .url
            .ok_or_else(|| "Stripe checkout: the session has no URL".to_owned())
    }

    /// Opens a Customer Portal session (payment methods, invoices, cancellation) for the
    /// customer; the URL to send the member to.
    pub async fn portal(&self, customer: &str, return_url: &str) -> Result<String, String> {
        CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .send(&self.client)
            .await
            .map(|session| session.url)
            .map_err(|err| format!("Stripe portal: {err}"))
    }

    /// Gives the customer an EU VAT id (`eu_vat`), which Stripe then prints on its invoices
    /// and uses for the reverse charge; the tax id's `txi_…`.
    pub async fn add_eu_vat_id(&self, customer: &str, vat_id: &str) -> Result<String, String> {
        CreateCustomerTaxId::new(customer, CreateCustomerTaxIdType::EuVat, vat_id)
            .send(&self.client)
            .await
            .map(|tax_id| tax_id.id.to_string())
            .map_err(|err| format!("Stripe tax id: {err}"))
    }

    /// Removes a tax id from the customer (its VAT id was replaced).
    pub async fn remove_tax_id(&self, customer: &str, tax_id: &str) -> Result<(), String> {
        DeleteCustomerTaxId::new(customer, tax_id)
            .send(&self.client)
            .await
            .map(drop)
            .map_err(|err| format!("Stripe tax id removal: {err}"))
    }

    /// The subscription as Stripe has it now.
    pub async fn subscription(&self, id: &str) -> Result<SubscriptionState, stripe::StripeError> {
        let subscription = RetrieveSubscription::new(id).send(&self.client).await?;
        Ok(SubscriptionState {
            id: subscription.id.to_string(),
            customer: subscription.customer.id().to_string(),
            status: subscription.status.as_str().to_owned(),
            price_ids: subscription
                .items
                .data
                .iter()
                .map(|item| item.price.id.to_string())
                .collect(),
            current_period_end: subscription
                .items
                .data
                .iter()
                .map(|item| item.current_period_end)
                .max(),
            organisation_id: subscription.metadata.get(ORGANISATION_METADATA).cloned(),
        })
    }
}

/// Stripe's webhook signature: HMAC-SHA256 of `"{timestamp}.{payload}"` with the secret.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

/// A `Stripe-Signature` header for `payload`, as Stripe sends it (the stand-in and tests).
pub fn signature_header(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(sign(secret, timestamp, payload))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe() -> Stripe {
        Stripe::new("sk_test_x", "whsec_test", "http://127.0.0.1:9/").unwrap()
    }

    const EVENT: &[u8] = br#"{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1","subscription":"sub_1"}}}"#;

    #[test]
    fn checkout_pages_are_on_stripe_checkout_origin_or_the_stand_in() {
        let real = Stripe::new("sk_live_x", "whsec_x", "https://api.stripe.com/").unwrap();
        assert_eq!(real.checkout_origin(), "https://checkout.stripe.com");
        assert_eq!(stripe().checkout_origin(), "http://127.0.0.1:9");
    }

    #[test]
    fn signatures_are_checked_and_any_v1_may_match() {
        let stripe = stripe();
        let now = 1_800_000_000;
        let good = signature_header("whsec_test", now, EVENT);
        let event = stripe.verify_webhook(EVENT, &good, now).unwrap();
        assert_eq!(
            (event.id.as_str(), event.data.object.subscription.as_deref()),
            ("evt_1", Some("sub_1"))
        );
        // During a rotation Stripe signs with the old and the new secret.
        let old = signature_header("whsec_old", now, EVENT);
        let both = format!("{good},{}", old.split_once(',').unwrap().1);
        assert!(stripe.verify_webhook(EVENT, &both, now).is_ok());
        let rotated = format!("{old},{}", good.split_once(',').unwrap().1);
        assert!(stripe.verify_webhook(EVENT, &rotated, now).is_ok());

        assert_eq!(
            stripe.verify_webhook(EVENT, &old, now).unwrap_err(),
            WebhookError::BadSignature
        );
        assert_eq!(
            stripe.verify_webhook(EVENT, &good, now + 301).unwrap_err(),
            WebhookError::BadSignature
        );
        assert_eq!(
            stripe.verify_webhook(EVENT, &good, now - 301).unwrap_err(),
            WebhookError::BadSignature
        );
        assert!(stripe.verify_webhook(EVENT, &good, now + 300).is_ok());
        let tampered = EVENT
            .to_vec()
            .into_iter()
            .map(|b| if b == b'1' { b'2' } else { b })
            .collect::<Vec<_>>();
        assert_eq!(
            stripe.verify_webhook(&tampered, &good, now).unwrap_err(),
            WebhookError::BadSignature
        );
        for header in ["", "t=1", "v1=00", "t=x,v1=zz"] {
            assert_eq!(
                stripe.verify_webhook(EVENT, header, now).unwrap_err(),
                WebhookError::MissingSignature,
                "{header}"
            );
        }
        let signed_junk = signature_header("whsec_test", now, b"[]");
        assert_eq!(
            stripe.verify_webhook(b"[]", &signed_junk, now).unwrap_err(),
            WebhookError::NotAnEvent
        );
    }
}
