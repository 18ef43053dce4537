//! `_bulk` request bodies (NDJSON), built without intermediate JSON trees.

use std::io::Write;

use crate::ordering::{Change, Op};

/// Appends the NDJSON lines for `changes` to `out` (cleared first).
///
/// Every action carries `version_type=external_gte` so replays and parallel lanes
/// can never move a document backwards (SPEC §2.2).
pub fn encode(changes: &[Change], out: &mut Vec<u8>) {
    out.clear();
    for c in changes {
        let action = match c.op {
            Op::Index(_) => "index",
            Op::Delete => "delete",
        };
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(action.as_bytes());
        out.extend_from_slice(b"\":{\"_index\":");
        write_json_str(out, &c.key.index);
        out.extend_from_slice(b",\"_id\":");
        write_json_str(out, &c.key.id);
        // Writing into a Vec cannot fail.
        let _ = writeln!(
            out,
            ",\"version\":{},\"version_type\":\"external_gte\"}}}}",
            c.version.0
        );
        if let Op::Index(src) = &c.op {
            out.extend_from_slice(src);
            out.push(b'\n');
        }
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaper into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::AckToken;
    use crate::ordering::{DocKey, Origin};
    use crate::position::Version;
    use bytes::Bytes;

    fn change(id: &str, op: Op, v: u64) -> Change {
        Change {
            key: DocKey {
                index: "shop.orders".into(),
                id: id.into(),
            },
            op,
            version: Version(v),
            origin: Origin {
                file: "b.000001".into(),
                pos: 1,
            },
            ack: AckToken::open().0,
        }
    }

    #[test]
    fn golden_ndjson() {
        let mut out = Vec::new();
        encode(
            &[
                change(
                    "1",
                    Op::Index(Bytes::from_static(b"{\"id\":1,\"t\":\"a\"}")),
                    7,
                ),
                change("a\"b:c", Op::Delete, 8),
            ],
            &mut out,
        );
        let expected = concat!(
            "{\"index\":{\"_index\":\"shop.orders\",\"_id\":\"1\",\"version\":7,\"version_type\":\"external_gte\"}}\n",
            "{\"id\":1,\"t\":\"a\"}\n",
            "{\"delete\":{\"_index\":\"shop.orders\",\"_id\":\"a\\\"b:c\",\"version\":8,\"version_type\":\"external_gte\"}}\n",
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
