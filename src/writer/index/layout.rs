//! The layout of an index binlog2es creates (SPEC §10): a physical index `NAME-<generation>`
//! behind the alias `NAME`, so that a rebuild can fill `NAME-2` and move the alias in one
//! step while readers and writers keep addressing `NAME`. Pure: names and answers only.

use serde_json::{Map, Value};

use super::mapping::CREATED_BY;

/// The physical index of `index`'s generation `generation`: `orders-2`.
pub fn physical_name(index: &str, generation: u64) -> String {
    format!("{index}-{generation}")
}

/// The generation of `physical` when it is one of `index`'s (`index-<digits>`, as
/// [`physical_name`] writes it); `None` for `index` itself and any other name.
pub fn generation_of(index: &str, physical: &str) -> Option<u64> {
    let digits = physical.strip_prefix(index)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let generation: u64 = digits.parse().ok()?;
    // `orders-01` or `orders-0` are no names of ours.
    (generation > 0 && physical_name(index, generation) == physical).then_some(generation)
}

/// What stands behind an index name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Neither an index nor an alias of that name.
    Missing,
    /// A concrete index of that name (binlog2es before SPEC §10, or someone else's).
    Concrete {
        /// `_meta.created_by` is binlog2es.
        ours: bool,
    },
    /// An alias of that name.
    Alias {
        /// The indices it points to, sorted.
        physical: Vec<String>,
        /// Every one of them was created by binlog2es.
        ours: bool,
    },
}

/// What a `GET /NAME/_mapping` answer says: one entry per physical index (one for a
/// concrete index, one per target for an alias).
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    /// Physical index name → its `mappings`.
    entries: Map<String, Value>,
}

impl Mappings {
    /// Reads an answer (anything but an object is no index).
    pub fn from_answer(answer: &Value) -> Self {
        let entries = answer
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, e)| (k.clone(), e["mappings"].clone()))
                    .collect()
            })
            .unwrap_or_default();
        Self { entries }
    }

    /// Whether there is at least one index and binlog2es created every one.
    pub fn ours(&self) -> bool {
        !self.entries.is_empty()
            && self
                .entries
                .values()
                .all(|m| m["_meta"]["created_by"].as_str() == Some(CREATED_BY))
    }

    /// Whether binlog2es may alter it: ours and a single index, so one `_mapping` update
    /// through the name changes exactly that index.
    pub fn alterable(&self) -> bool {
        self.entries.len() == 1 && self.ours()
    }

    /// The physical index names, sorted.
    pub fn physical(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort();
        names
    }

    /// Every field of every index (the later index's definition when two differ).
    pub fn properties(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for m in self.entries.values() {
            if let Some(p) = m["properties"].as_object() {
                out.extend(p.clone());
            }
        }
        out
    }

    /// `_meta` of the single index; empty when there are several or none.
    pub fn meta(&self) -> Map<String, Value> {
        match self.entries.values().next() {
            Some(m) if self.entries.len() == 1 => {
                m["_meta"].as_object().cloned().unwrap_or_default()
            }
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn physical_names_and_their_generations() {
        assert_eq!(physical_name("orders", 1), "orders-1");
        assert_eq!(physical_name("orders", 12), "orders-12");
        assert_eq!(generation_of("orders", "orders-1"), Some(1));
        assert_eq!(generation_of("orders", "orders-12"), Some(12));
        assert_eq!(generation_of("my-index", "my-index-3"), Some(3));
        for other in [
            "orders",
            "orders-",
            "orders-x",
            "orders-1a",
            "orders-01",
            "orders-0",
            "orders1",
            "order-1",
            "orders-1-2",
            "orders--1",
            "xorders-1",
        ] {
            assert_eq!(generation_of("orders", other), None, "{other}");
        }
        assert_eq!(generation_of("orders", "orders-99999999999999999999"), None);
    }

    #[test]
    fn mapping_answers_tell_ownership_fields_and_meta() {
        let ours = json!({"_meta": {"created_by": "binlog2es", "rule_fingerprint": "ab"},
            "properties": {"a": {"type": "long"}}});
        let alias = Mappings::from_answer(&json!({"orders-1": {"mappings": ours}}));
        assert!(alias.ours() && alias.alterable());
        assert_eq!(alias.physical(), vec!["orders-1"]);
        assert_eq!(alias.meta()["rule_fingerprint"], "ab");
        assert_eq!(
            Value::Object(alias.properties()),
            json!({"a": {"type": "long"}})
        );
        let two = Mappings::from_answer(&json!({
            "orders-2": {"mappings": ours},
            "orders-1": {"mappings": {"properties": {"b": {"type": "keyword"}}}},
        }));
        assert!(!two.ours() && !two.alterable());
        assert_eq!(two.physical(), vec!["orders-1", "orders-2"]);
        assert!(two.meta().is_empty());
        let both_ours = Mappings::from_answer(&json!({
            "orders-2": {"mappings": ours}, "orders-1": {"mappings": ours}}));
        assert!(both_ours.ours() && !both_ours.alterable());
        assert!(!Mappings::from_answer(&Value::Null).ours());
        assert!(!Mappings::from_answer(&json!({"plain": {"mappings": {}}})).ours());
    }
}
