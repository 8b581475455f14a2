//! Siteverify request bodies, form-encoded or JSON, parsed by the function the control
//! plane's `POST /siteverify` calls. The first line of the input is the `Content-Type`
//! header (or none, when there is no newline), the rest is the body.

#![no_main]

use humanproof_protocol::siteverify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(newline) => (
            std::str::from_utf8(&data[..newline]).ok(),
            &data[newline + 1..],
        ),
        None => (None, data),
    };
    let _ = siteverify::parse(content_type, body);
});
