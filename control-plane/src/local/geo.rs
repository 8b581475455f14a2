//! Country and network of a client IP from offline MaxMind-format databases (GeoLite2 or
//! GeoIP2 Country and ASN), for the local server: on Cloudflare the platform reports both.
//! They feed only per-project counters; no lookup result is kept with a visitor.

use std::net::IpAddr;
use std::path::Path;

use humanproof_protocol::Network;
use maxminddb::{Reader, geoip2};

/// The configured databases; either may be absent.
#[derive(Default)]
pub struct GeoLookup {
    country: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for GeoLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoLookup")
            .field("country", &self.country.is_some())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

impl GeoLookup {
    /// Opens the databases given; a file that is missing or not a MaxMind database is an error.
    pub fn open(
        country: Option<&Path>,
        asn: Option<&Path>,
    ) -> Result<GeoLookup, maxminddb::MaxMindDbError> {
        Ok(GeoLookup {
            country: country.map(Reader::open_readfile).transpose()?,
            asn: asn.map(Reader::open_readfile).transpose()?,
        })
    }

    /// What the databases know of `ip`; nothing for addresses they do not cover.
    pub fn lookup(&self, ip: IpAddr) -> Network {
        let country = self.country.as_ref().and_then(|reader| {
            let found = reader.lookup(ip).ok()?.decode::<geoip2::Country>().ok()??;
            found.country.iso_code.map(str::to_owned)
        });
        let asn = self.asn.as_ref().and_then(|reader| {
            reader
                .lookup(ip)
                .ok()?
                .decode::<geoip2::Asn>()
                .ok()??
                .autonomous_system_number
        });
        Network { country, asn }
    }
}
