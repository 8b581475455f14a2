//! Snapshot entries as the edge reads them from KV: text parsed into a `SiteSnapshot`, its
//! hosts matched, its preset applied, then the entry published to the edge and used for a
//! plain Cap start, a widget's start and a redeem from an origin on one of its domains.

#![no_main]

use humanproof_fuzz::{check, edge, post};
use humanproof_protocol::SiteSnapshot;
use humanproof_protocol::snapshot::origin_host;
use libfuzzer_sys::fuzz_target;

/// What our widget sends when a person starts the check: enough for the environment check
/// and the preset's obfuscation to run.
const WIDGET_START: &[u8] =
    br#"{"widget":{"variant":"checkbox","trigger":"click","branding":"full","signal_version":1},
"signals":{"elapsed_ms":9000,"focus_count":3,"blur_count":2,"key_count":41,"pointer_moves":88,
"pointer_downs":2,"interactions":46,"visibility":"visible","was_hidden":false},
"form":{"page_path":"/signup","method":"post","action_path":"/signup","email":"ada@example.com"}}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(site) = serde_json::from_str::<SiteSnapshot>(text) else {
        return;
    };
    let protection = site.preset.protection();
    let _ = site.preset.params();
    assert_eq!(
        protection.clamped(),
        protection,
        "a preset's protection is within its ranges"
    );

    let domains: Vec<String> = site
        .production_domains
        .iter()
        .chain(&site.testing_domains)
        .take(4)
        .cloned()
        .collect();
    let edge = edge(site.clone());
    for domain in domains {
        let origin = format!("https://{domain}");
        if let Some(host) = origin_host(&origin) {
            let _ = site.match_host(&host);
        }
        let challenge = format!("/{}/challenge", site.site_key);
        check(&post(&edge, &challenge, &origin, b""));
        let started = post(&edge, &challenge, &origin, WIDGET_START);
        check(&started);
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&started.body) else {
            continue;
        };
        if let Some(token) = answer["token"].as_str() {
            let redeem = serde_json::json!({ "token": token, "solutions": [] }).to_string();
            check(&post(
                &edge,
                &format!("/{}/redeem", site.site_key),
                &origin,
                redeem.as_bytes(),
            ));
        }
    }
});
