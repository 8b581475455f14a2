//! Whole requests to the edge: method, path, `Origin`, client IP, the headers risk scoring
//! reads, the platform's country and network, and the body, each chosen by the fuzzer.
//! Method, path and origin are often the ones a browser would send to the published site,
//! so most inputs get past routing and the origin check to the parsers behind them.

#![no_main]

use arbitrary::Arbitrary;
use humanproof_edge::risk::ClientHeaders;
use humanproof_edge::{EdgeRequest, RequestBody};
use humanproof_fuzz::{NOW_MS, ORIGIN, SITE_KEY, block_on, check, edge, site};
use humanproof_protocol::Network;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Method<'a> {
    Post,
    Options,
    Raw(&'a str),
}

#[derive(Debug, Arbitrary)]
enum Path<'a> {
    Challenge,
    Redeem,
    Raw(&'a str),
}

#[derive(Debug, Arbitrary)]
enum Origin<'a> {
    Allowed,
    Raw(Option<&'a str>),
}

#[derive(Debug, Arbitrary)]
struct Request<'a> {
    method: Method<'a>,
    path: Path<'a>,
    origin: Origin<'a>,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    accept_language: Option<&'a str>,
    sec_fetch_site: Option<&'a str>,
    sec_fetch_mode: Option<&'a str>,
    sec_fetch_dest: Option<&'a str>,
    country: Option<String>,
    asn: Option<u32>,
    /// The shell read more than the edge's limit and said so instead of passing bytes.
    too_large: bool,
    body: &'a [u8],
}

fuzz_target!(|request: Request<'_>| {
    let edge = edge(site());
    let method = match request.method {
        Method::Post => "POST",
        Method::Options => "OPTIONS",
        Method::Raw(method) => method,
    };
    let path = match request.path {
        Path::Challenge => format!("/{SITE_KEY}/challenge"),
        Path::Redeem => format!("/{SITE_KEY}/redeem"),
        Path::Raw(path) => path.to_owned(),
    };
    let origin = match request.origin {
        Origin::Allowed => Some(ORIGIN),
        Origin::Raw(origin) => origin,
    };
    let network = Network {
        country: request.country,
        asn: request.asn,
    };
    let response = block_on(edge.handle(EdgeRequest {
        method,
        path: &path,
        origin,
        client_ip: request.client_ip,
        headers: ClientHeaders {
            user_agent: request.user_agent,
            accept_language: request.accept_language,
            sec_fetch_site: request.sec_fetch_site,
            sec_fetch_mode: request.sec_fetch_mode,
            sec_fetch_dest: request.sec_fetch_dest,
        },
        network: &network,
        body: if request.too_large {
            RequestBody::TooLarge
        } else {
            RequestBody::Read(request.body)
        },
        now_ms: NOW_MS,
    }));
    check(&response);
});
