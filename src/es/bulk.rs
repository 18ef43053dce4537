//! `_bulk` request bodies (NDJSON), written straight into a byte buffer without
//! intermediate JSON trees.

use crate::json_string::write_json_string;

/// One action of a `_bulk` request.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Index this `_source` (one line of JSON).
    Index(&'a [u8]),
    /// Delete the document.
    Delete,
}

/// Appends one action to `out`: the action line, then the document line for an index.
/// With an `id`, the document is addressed by it; with a `version`, the action carries
/// `version_type=external_gte`, so replays and parallel lanes can never move a document
/// backwards (SPEC §2.2).
pub fn push(
    out: &mut Vec<u8>,
    action: Action<'_>,
    index: &str,
    id: Option<&str>,
    version: Option<u64>,
    routing: Option<&str>,
) {
    out.extend_from_slice(match action {
        Action::Index(_) => b"{\"index\":{\"_index\":",
        Action::Delete => b"{\"delete\":{\"_index\":",
    });
    write_json_string(out, index);
    if let Some(id) = id {
        out.extend_from_slice(b",\"_id\":");
        write_json_string(out, id);
    }
    if let Some(routing) = routing {
        out.extend_from_slice(b",\"routing\":");
        write_json_string(out, routing);
    }
    if let Some(version) = version {
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(itoa::Buffer::new().format(version).as_bytes());
        out.extend_from_slice(b",\"version_type\":\"external_gte\"");
    }
    out.extend_from_slice(b"}}\n");
    if let Action::Index(source) = action {
        out.extend_from_slice(source);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_lines() {
        let mut out = Vec::new();
        push(
            &mut out,
            Action::Index(b"{\"id\":1}"),
            "shop.orders",
            Some("1"),
            Some(7),
            None,
        );
        push(
            &mut out,
            Action::Delete,
            "shop.orders",
            Some("a\"b"),
            Some(8),
            Some("42"),
        );
        push(&mut out, Action::Index(b"{}"), "dead", None, None, None);
        let expected = concat!(
            "{\"index\":{\"_index\":\"shop.orders\",\"_id\":\"1\",\"version\":7,\"version_type\":\"external_gte\"}}\n",
            "{\"id\":1}\n",
            "{\"delete\":{\"_index\":\"shop.orders\",\"_id\":\"a\\\"b\",\"routing\":\"42\",\"version\":8,\"version_type\":\"external_gte\"}}\n",
            "{\"index\":{\"_index\":\"dead\"}}\n",
            "{}\n",
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
