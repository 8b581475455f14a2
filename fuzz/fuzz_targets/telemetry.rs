//! Telemetry batches as the control plane's `POST /internal/telemetry` reads them: the
//! signature header checked against the body, and the body parsed as a batch. The first line
//! of the input is the `X-HumanProof-Signature` header, the rest is the body.

#![no_main]

use humanproof_fuzz::{NOW_MS, master};
use humanproof_protocol::TelemetryBatch;
use humanproof_protocol::telemetry::verify_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(newline) => (&data[..newline], &data[newline + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let _ = verify_batch(&master(), header, body, NOW_MS);
    let _ = serde_json::from_slice::<TelemetryBatch>(body);
});
