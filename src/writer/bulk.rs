//! `_bulk` request bodies for a batch of changes.

use crate::es::bulk::{Action, push};
use crate::ordering::{Change, Op};

/// Appends the NDJSON lines for `changes` to `out` (cleared first), each action versioned
/// with the change's version.
pub fn encode(changes: &[Change], out: &mut Vec<u8>) {
    out.clear();
    for c in changes {
        let action = match &c.op {
            Op::Index(src) => Action::Index(src),
            Op::Delete => Action::Delete,
            // The lane builds every refresh before encoding (`crate::writer::refresh`).
            Op::Refresh(_) => continue,
        };
        push(
            out,
            action,
            &c.key.index,
            Some(&c.key.id),
            Some(c.version.0),
            c.routing.as_deref(),
        );
    }
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
            routing: None,
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
