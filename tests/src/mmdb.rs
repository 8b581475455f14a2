//! Writes small MaxMind DB files (format 2.0, IPv4, 24-bit records), so the local server's
//! GeoIP lookups are tested against real databases that the `maxminddb` reader opens, without
//! shipping MaxMind's (licensed) data. Only what the tests need: maps, strings and unsigned
//! integers.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A value in the data section.
#[derive(Debug, Clone)]
pub enum Value {
    /// UTF-8 string.
    Text(String),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Map with string keys.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// A map from pairs.
    pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Record {
    Empty,
    Node(u32),
    Data(u32),
}

/// Builds an IPv4 database of the given type (e.g. `GeoLite2-Country`) from networks.
pub fn write(database_type: &str, networks: &[(Ipv4Addr, u8, Value)]) -> Vec<u8> {
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    let mut data = Vec::new();
    for (network, prefix, value) in networks {
        let offset = u32::try_from(data.len()).expect("small test databases");
        encode(value, &mut data);
        let bits = u32::from(*network);
        let mut node = 0usize;
        for depth in 0..*prefix {
            let bit = usize::from((bits >> (31 - depth)) & 1 == 1);
            if depth + 1 == *prefix {
                nodes[node][bit] = Record::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Record::Node(next) => next as usize,
                    _ => {
                        nodes.push([Record::Empty; 2]);
                        let next = nodes.len() - 1;
                        nodes[node][bit] = Record::Node(next as u32);
                        next
                    }
                };
            }
        }
    }
    let node_count = u32::try_from(nodes.len()).expect("small test databases");
    let mut file = Vec::new();
    for pair in &nodes {
        for record in pair {
            let value = match *record {
                Record::Empty => node_count,
                Record::Node(next) => next,
                // Data pointers count from the start of the 16-byte separator's end.
                Record::Data(offset) => node_count + 16 + offset,
            };
            file.extend_from_slice(&value.to_be_bytes()[1..]);
        }
    }
    file.extend_from_slice(&[0; 16]);
    file.extend_from_slice(&data);
    file.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
    let metadata = [
        ("binary_format_major_version", Value::U32(2)),
        ("binary_format_minor_version", Value::U32(0)),
        ("build_epoch", Value::U32(1_700_000_000)),
        ("database_type", Value::Text(database_type.to_owned())),
        (
            "description",
            Value::map([("en", Value::Text("HumanProof test database".into()))]),
        ),
        ("ip_version", Value::U32(4)),
        ("node_count", Value::U32(node_count)),
        ("record_size", Value::U32(24)),
    ];
    encode_metadata(&metadata, &mut file);
    file
}

/// The metadata map; `languages` is an array, the one type only metadata needs here.
fn encode_metadata(fields: &[(&str, Value)], out: &mut Vec<u8>) {
    control(7, fields.len() + 1, out);
    for (key, value) in fields {
        encode(&Value::Text((*key).to_owned()), out);
        match (*key, value) {
            // The reader wants these as the types the specification names.
            (
                "binary_format_major_version"
                | "binary_format_minor_version"
                | "ip_version"
                | "record_size",
                Value::U32(n),
            ) => {
                let bytes = (*n as u16).to_be_bytes();
                control(5, 2, out);
                out.extend_from_slice(&bytes);
            }
            ("build_epoch", Value::U32(n)) => {
                // uint64 is an extended type (9): size in the control byte, then 9 - 7.
                out.push(8);
                out.push(2);
                out.extend_from_slice(&u64::from(*n).to_be_bytes());
            }
            _ => encode(value, out),
        }
    }
    encode(&Value::Text("languages".into()), out);
    // Array: extended type 11, one element.
    out.push(1);
    out.push(4);
    encode(&Value::Text("en".into()), out);
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Text(text) => {
            control(2, text.len(), out);
            out.extend_from_slice(text.as_bytes());
        }
        Value::U32(n) => {
            control(6, 4, out);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Map(map) => {
            control(7, map.len(), out);
            for (key, value) in map {
                encode(&Value::Text(key.clone()), out);
                encode(value, out);
            }
        }
    }
}

/// A control byte for a basic type with a size under 29.
fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let size = u8::try_from(size)
        .ok()
        .filter(|size| *size < 29)
        .expect("test values are small");
    out.push((kind << 5) | size);
}
