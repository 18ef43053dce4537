//! Mapping derivation: the field definition of each column type on this server, a rule's
//! overrides, and the body that creates an index. Pure: no requests.

use serde_json::{Map, Value, json};

use crate::config::TableRule;
use crate::config::document::{RelationKind, RowConditions};
use crate::document::{DocumentPlan, Level, RelationPlan};
use crate::es::ServerInfo;
use crate::schema::{ColumnFamily, ColumnSpec, TableSchema};

/// `_meta.created_by` of the indices binlog2es creates (and may therefore extend).
pub const CREATED_BY: &str = "binlog2es";

/// Format of `date` fields: accepts the §6 forms `2024-02-29`, `2024-02-29T13:45:01`,
/// `2024-02-29T13:45:01.123456` and `…Z` (fractions up to 9 digits are parsed; `date`
/// keeps milliseconds, `_source` keeps every digit).
pub const DATE_FORMAT: &str = "strict_date_optional_time||epoch_millis";
/// Format of `date_nanos` fields (TIMESTAMP with more than millisecond precision).
pub const DATE_NANOS_FORMAT: &str = "strict_date_optional_time_nanos||epoch_millis";
/// `ignore_above` of the `keyword` sub-field of text columns: longer values stay
/// searchable through the `text` field, and the keyword index stays small.
pub const KEYWORD_IGNORE_ABOVE: u32 = 256;
/// `ignore_above` of `flattened` JSON leaves: 8191 characters are at most 32764 UTF-8 bytes,
/// under Lucene's 32766-byte term limit, so a long JSON string never rejects its document.
pub const FLATTENED_IGNORE_ABOVE: u32 = 8191;
/// `depth_limit` of `flattened` fields: MySQL's own JSON nesting limit (the default, 20,
/// would reject deeper documents MySQL accepts).
pub const FLATTENED_DEPTH_LIMIT: u32 = 100;

/// How JSON columns are mapped on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonField {
    /// Elasticsearch ≥ 7.3 `flattened`: every leaf searchable as a keyword, no mapping growth.
    Flattened,
    /// OpenSearch ≥ 2.7 `flat_object`: the same idea.
    FlatObject,
    /// Older servers: `object` with `enabled: false`: kept in `_source`, not searchable.
    Unindexed,
}

/// Mapping types the server offers, from `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `unsigned_long` exists (Elasticsearch ≥ 7.10, OpenSearch ≥ 2.8).
    pub unsigned_long: bool,
    /// Type for JSON columns.
    pub json: JsonField,
}

impl Capabilities {
    /// What `server` supports.
    pub fn of(server: &ServerInfo) -> Self {
        if server.opensearch {
            Self {
                unsigned_long: server.at_least(2, 8),
                json: if server.at_least(2, 7) {
                    JsonField::FlatObject
                } else {
                    JsonField::Unindexed
                },
            }
        } else {
            Self {
                unsigned_long: server.at_least(7, 10),
                json: if server.at_least(7, 3) {
                    JsonField::Flattened
                } else {
                    JsonField::Unindexed
                },
            }
        }
    }

    /// The newest servers' set (Elasticsearch 8/9).
    pub const LATEST: Capabilities = Capabilities {
        unsigned_long: true,
        json: JsonField::Flattened,
    };
}

/// The field definition for one column, or `None` for a type binlog2es does not decode
/// (the field is then left to dynamic mapping).
///
/// Choices (the `_source` always keeps the exact §6 value; these decide what is searchable):
/// - TINYINT … BIGINT signed, MEDIUMINT/INT unsigned, YEAR, BIT(1..63) → `long`
///   (one type: ranges and aggregations behave alike, nothing overflows).
/// - BIGINT UNSIGNED, BIT(64) → `unsigned_long` (full 0 … 2^64-1); on servers without it,
///   `double` (values above 2^53 are rounded in the index).
/// - FLOAT → `float`, DOUBLE → `double`.
/// - DECIMAL(p,0) with p ≤ 18 → `long` (exact: 18 digits fit in 64 bits).
///   DECIMAL(p,s) with p ≤ 15 → `scaled_float` with `scaling_factor` 10^s: the scaled
///   value has at most 15 digits, below 2^53, so what is indexed is exactly MySQL's digits
///   (ranges and sums to the last decimal are exact).
///   Wider DECIMALs → `double`: about 16 significant digits in the index. `keyword` would
///   keep every digit but lose numeric ranges and sums; `scaled_float` would overflow.
/// - DATE, DATETIME(fsp) → `date` with [`DATE_FORMAT`]: millisecond precision in the index.
///   `date_nanos` would keep microseconds but only holds 1970 … 2262, and DATETIME spans
///   1000 … 9999. TIMESTAMP(0..3) → `date`; TIMESTAMP(4..6) → `date_nanos` (TIMESTAMP's
///   range, 1970 … 2038, fits). `ignore_malformed`: a date MySQL stores but the server
///   cannot parse (`ALLOW_INVALID_DATES`, e.g. `2024-02-30`) leaves the field unindexed
///   instead of rejecting the document.
/// - TIME → `keyword` (`-838:59:59` is no time of day).
/// - CHAR/VARCHAR/TEXT → `text` with a `keyword` sub-field (`ignore_above` 256);
///   BINARY/VARBINARY/BLOB (binary collation) → `binary` (base64, stored, not searchable).
/// - ENUM → `keyword`; SET → `keyword` (an array of labels is a multi-valued keyword).
/// - JSON, and MariaDB's JSON alias (a LONGTEXT with `json_valid`, `json_text`) →
///   `object` with `enabled: false`: kept in `_source`, not searchable, and every JSON
///   value (also a bare scalar) indexes. For a column that always holds objects, a rule's
///   `mapping = { col = { type = "flattened" } }` (`flat_object` on OpenSearch) makes its
///   leaves searchable.
/// - GEOMETRY → `geo_shape` (accepts every GeoJSON type), `ignore_malformed` so coordinates
///   outside longitude/latitude ranges (SRID 0 planes) keep their document.
pub fn field_mapping(col: &ColumnSpec, caps: Capabilities) -> Option<Value> {
    let long = || json!({"type": "long"});
    let unsigned_long = || {
        if caps.unsigned_long {
            json!({"type": "unsigned_long"})
        } else {
            json!({"type": "double"})
        }
    };
    let date = || json!({"type": "date", "format": DATE_FORMAT, "ignore_malformed": true});
    let fsp = || col.meta.first().copied().unwrap_or(0);
    let mapping = match col.family() {
        ColumnFamily::Integer {
            bigint: true,
            unsigned: true,
        } => unsigned_long(),
        ColumnFamily::Integer { .. } | ColumnFamily::MediumInt { .. } | ColumnFamily::Year => {
            long()
        }
        ColumnFamily::Float => json!({"type": "float"}),
        ColumnFamily::Double => json!({"type": "double"}),
        ColumnFamily::Decimal => {
            let precision = col.meta.first().copied().unwrap_or(65);
            let scale = col.meta.get(1).copied().unwrap_or(30);
            if scale == 0 && precision <= 18 {
                long()
            } else if precision <= 15 {
                json!({"type": "scaled_float", "scaling_factor": 10_u64.pow(u32::from(scale))})
            } else {
                json!({"type": "double"})
            }
        }
        ColumnFamily::Bit => {
            // Metadata: [bits % 8, bytes]; BIT(64) values reach 2^64-1.
            let bits = u32::from(col.meta.get(1).copied().unwrap_or(8)) * 8
                + u32::from(col.meta.first().copied().unwrap_or(0));
            if bits >= 64 { unsigned_long() } else { long() }
        }
        ColumnFamily::Date | ColumnFamily::DateTime { .. } => date(),
        ColumnFamily::Timestamp { fractional: true } if fsp() > 3 => json!({
            "type": "date_nanos", "format": DATE_NANOS_FORMAT, "ignore_malformed": true
        }),
        ColumnFamily::Timestamp { .. } => date(),
        ColumnFamily::Time | ColumnFamily::OldTime => json!({"type": "keyword"}),
        ColumnFamily::Enum | ColumnFamily::Set => json!({"type": "keyword"}),
        // MariaDB's JSON alias is a LONGTEXT holding JSON, written as the JSON value.
        ColumnFamily::Json | ColumnFamily::JsonText => json_mapping(),
        ColumnFamily::Geometry => json!({"type": "geo_shape", "ignore_malformed": true}),
        // The decoder writes binary columns as base64 even when flagged JSON.
        ColumnFamily::Binary => json!({"type": "binary"}),
        ColumnFamily::Text => json!({
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}}
        }),
        ColumnFamily::Vector | ColumnFamily::Unsupported => return None,
    };
    Some(mapping)
}

/// JSON columns default to an unindexed object: SPEC §5 promises that every §6
/// value indexes, and `flattened`/`flat_object` reject a column holding a bare
/// scalar or an array of scalars. [`searchable_json_mapping`] is what to put in a
/// rule's `mapping` for a column that always holds objects.
fn json_mapping() -> Value {
    json!({"type": "object", "enabled": false})
}

/// The searchable JSON mapping this server offers (`flattened` on Elasticsearch,
/// `flat_object` on OpenSearch), for columns that always hold JSON objects.
pub fn searchable_json_mapping(caps: Capabilities) -> Value {
    match caps.json {
        JsonField::Flattened => json!({
            "type": "flattened",
            "ignore_above": FLATTENED_IGNORE_ABOVE,
            "depth_limit": FLATTENED_DEPTH_LIMIT
        }),
        JsonField::FlatObject => json!({"type": "flat_object"}),
        JsonField::Unindexed => json!({"type": "object", "enabled": false}),
    }
}

/// The properties for a table: one derived definition per document field (every column,
/// or the fields the rule's `include_columns`/`exclude_columns`/`rename` give, a renamed
/// field typed as its column), then the rule's `mapping` overrides, each replacing a whole
/// field definition (or adding a field).
pub fn properties(
    schema: &TableSchema,
    rule: &TableRule,
    caps: Capabilities,
) -> Map<String, Value> {
    // Only the fields matter here; a rule that does not fit the table stops the stream
    // before any index is made, so all columns are a safe fallback.
    let level = Level::compile("tables", &rule.fields(), &RowConditions::default(), schema);
    let mut props = match level {
        Ok(level) => level_properties(&level, schema, caps),
        Err(_) => {
            let mut props = Map::new();
            for col in &schema.columns {
                if let Some(m) = field_mapping(col, caps) {
                    props.insert(col.name.clone(), m);
                }
            }
            props
        }
    };
    apply_overrides(&mut props, rule);
    props
}

/// The rule's `mapping` overrides: each replaces a whole field definition, by field name.
pub fn apply_overrides(props: &mut Map<String, Value>, rule: &TableRule) {
    for (field, def) in &rule.mapping {
        props.insert(field.clone(), def.clone());
    }
}

/// The derived properties of a rule with relations (SPEC §9 "Mapping"): the root's fields
/// typed by their columns, a `join` an `object` of its fields, a `nest` a `nested` of its
/// fields, a `values` array its column's type, to any depth. The rule's `mapping`
/// overrides are the caller's ([`apply_overrides`]).
pub fn document_properties(plan: &DocumentPlan, caps: Capabilities) -> Map<String, Value> {
    let mut props = level_properties(&plan.level, &plan.root, caps);
    relation_properties(&mut props, &plan.relations, caps);
    props
}

/// One definition per field of `level`, typed by its column of `schema`.
fn level_properties(level: &Level, schema: &TableSchema, caps: Capabilities) -> Map<String, Value> {
    let mut props = Map::new();
    for (i, name) in level.fields() {
        if let Some(m) = schema.columns.get(*i).and_then(|c| field_mapping(c, caps)) {
            props.insert(name.clone(), m);
        }
    }
    props
}

#[allow(dead_code)]
fn relation_properties(
    props: &mut Map<String, Value>,
    relations: &[RelationPlan],
    caps: Capabilities,
) {
    for rel in relations {
        let def = match (rel.kind, rel.values) {
            // An array of values is mapped as one value of its column.
            (RelationKind::Nest, Some(col)) => {
                match rel
                    .table
                    .columns
                    .get(col)
                    .and_then(|c| field_mapping(c, caps))
                {
                    Some(m) => m,
                    None => continue,
                }
            }
            (kind, _) => {
                let mut inner = level_properties(&rel.level, &rel.table, caps);
                relation_properties(&mut inner, &rel.children, caps);
                let ty = match kind {
                    RelationKind::Join => "object",
                    RelationKind::Nest => "nested",
                };
                json!({"type": ty, "properties": inner})
            }
        };
        props.insert(rel.field.clone(), def);
    }
}

/// The properties `schema`'s `rule` wants: the fields of the whole document when the rule
/// has relations and its `plan` is known, else the table's; the rule's overrides applied.
pub fn rule_properties(
    schema: &TableSchema,
    rule: &TableRule,
    caps: Capabilities,
    plan: Option<&DocumentPlan>,
) -> Map<String, Value> {
    match plan {
        Some(plan) if rule.has_relations() => {
            let mut props = document_properties(plan, caps);
            apply_overrides(&mut props, rule);
            props
        }
        _ => properties(schema, rule, caps),
    }
}

/// The body of `PUT /<index>` for a table: the rule's settings, our `_meta` (with the
/// rule's `fingerprint`), `properties`, and the `alias` the new index is reached by.
pub fn create_body(
    schema: &TableSchema,
    rule: &TableRule,
    properties: &Map<String, Value>,
    fingerprint: &str,
    alias: Option<&str>,
) -> Value {
    let mut body = Map::new();
    if !rule.index_settings.is_empty() {
        body.insert(
            "settings".into(),
            Value::Object(rule.index_settings.clone()),
        );
    }
    if let Some(alias) = alias {
        body.insert("aliases".into(), json!({ alias: {} }));
    }
    body.insert(
        "mappings".into(),
        json!({
            "_meta": {
                "created_by": CREATED_BY,
                "binlog2es_version": env!("CARGO_PKG_VERSION"),
                "source_table": schema.qualified(),
                "rule_fingerprint": fingerprint,
            },
            "properties": properties,
        }),
    );
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::ColumnType::{self, *};

    fn col(
        name: &str,
        column_type: ColumnType,
        meta: &[u8],
        unsigned: bool,
        collation: u16,
    ) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            column_type,
            meta: meta.to_vec(),
            unsigned,
            collation,
            ..ColumnSpec::default()
        }
    }

    const TEXT: &str =
        r#"{"type":"text","fields":{"keyword":{"type":"keyword","ignore_above":256}}}"#;
    const DATE: &str = r#"{"type":"date","format":"strict_date_optional_time||epoch_millis","ignore_malformed":true}"#;

    #[test]
    fn column_types_map_to_field_types() {
        let cases: &[(ColumnSpec, &str)] = &[
            (
                col("a", MYSQL_TYPE_TINY, &[], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_TINY, &[], true, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_SHORT, &[], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_INT24, &[], true, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_LONG, &[], true, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_LONGLONG, &[], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_LONGLONG, &[], true, 0),
                r#"{"type":"unsigned_long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_FLOAT, &[4], false, 0),
                r#"{"type":"float"}"#,
            ),
            (
                col("a", MYSQL_TYPE_DOUBLE, &[8], false, 0),
                r#"{"type":"double"}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[10, 2], false, 0),
                r#"{"type":"scaled_float","scaling_factor":100}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[15, 15], false, 0),
                r#"{"type":"scaled_float","scaling_factor":1000000000000000}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[18, 0], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[19, 0], false, 0),
                r#"{"type":"double"}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[16, 2], false, 0),
                r#"{"type":"double"}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[65, 30], false, 0),
                r#"{"type":"double"}"#,
            ),
            (
                col("a", MYSQL_TYPE_BIT, &[1, 0], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_BIT, &[7, 7], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_BIT, &[0, 8], false, 0),
                r#"{"type":"unsigned_long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_YEAR, &[], false, 0),
                r#"{"type":"long"}"#,
            ),
            (col("a", MYSQL_TYPE_NEWDATE, &[], false, 0), DATE),
            (col("a", MYSQL_TYPE_DATE, &[], false, 0), DATE),
            (col("a", MYSQL_TYPE_DATETIME2, &[0], false, 0), DATE),
            (col("a", MYSQL_TYPE_DATETIME2, &[6], false, 0), DATE),
            (col("a", MYSQL_TYPE_TIMESTAMP2, &[3], false, 0), DATE),
            (
                col("a", MYSQL_TYPE_TIMESTAMP2, &[6], false, 0),
                r#"{"type":"date_nanos","format":"strict_date_optional_time_nanos||epoch_millis","ignore_malformed":true}"#,
            ),
            (
                col("a", MYSQL_TYPE_TIME2, &[2], false, 0),
                r#"{"type":"keyword"}"#,
            ),
            (col("a", MYSQL_TYPE_VARCHAR, &[40, 0], false, 255), TEXT),
            (col("a", MYSQL_TYPE_STRING, &[0xFE, 10], false, 8), TEXT),
            (col("a", MYSQL_TYPE_BLOB, &[2], false, 45), TEXT),
            (
                col("a", MYSQL_TYPE_BLOB, &[2], false, 63),
                r#"{"type":"binary"}"#,
            ),
            (
                col("a", MYSQL_TYPE_STRING, &[0xFE, 4], false, 63),
                r#"{"type":"binary"}"#,
            ),
            (
                col("a", MYSQL_TYPE_VARCHAR, &[10, 0], false, 63),
                r#"{"type":"binary"}"#,
            ),
            (
                col("a", MYSQL_TYPE_ENUM, &[0xF7, 1], false, 45),
                r#"{"type":"keyword"}"#,
            ),
            (
                col("a", MYSQL_TYPE_SET, &[0xF8, 1], false, 45),
                r#"{"type":"keyword"}"#,
            ),
            (
                col("a", MYSQL_TYPE_JSON, &[4], false, 0),
                r#"{"type":"object","enabled":false}"#,
            ),
            (
                col("a", MYSQL_TYPE_GEOMETRY, &[4], false, 0),
                r#"{"type":"geo_shape","ignore_malformed":true}"#,
            ),
        ];
        for (c, expected) in cases {
            let expected: Value = serde_json::from_str(expected).unwrap();
            assert_eq!(
                field_mapping(c, Capabilities::LATEST),
                Some(expected),
                "{:?} meta {:?} unsigned {} collation {}",
                c.column_type,
                c.meta,
                c.unsigned,
                c.collation
            );
        }
        let mariadb_json = ColumnSpec {
            json_text: true,
            ..col("a", MYSQL_TYPE_BLOB, &[4], false, 46)
        };
        assert_eq!(
            field_mapping(&mariadb_json, Capabilities::LATEST),
            Some(json!({"type": "object", "enabled": false}))
        );
        assert_eq!(
            field_mapping(
                &col("a", MYSQL_TYPE_VECTOR, &[], false, 0),
                Capabilities::LATEST
            ),
            None
        );
    }

    #[test]
    fn server_flavour_decides_json_and_unsigned() {
        let root = |dist: Option<&str>, number: &str| {
            let mut v = json!({"version": {"number": number}});
            if let Some(d) = dist {
                v["version"]["distribution"] = json!(d);
            }
            Capabilities::of(&ServerInfo::from_root(&v))
        };
        let json_col = col("j", MYSQL_TYPE_JSON, &[4], false, 0);
        let big = col("u", MYSQL_TYPE_LONGLONG, &[], true, 0);
        let cases = [
            (
                root(None, "8.15.1"),
                r#"{"type":"flattened","ignore_above":8191,"depth_limit":100}"#,
                "unsigned_long",
            ),
            (
                root(None, "7.17.24"),
                r#"{"type":"flattened","ignore_above":8191,"depth_limit":100}"#,
                "unsigned_long",
            ),
            (
                root(Some("opensearch"), "3.8.0"),
                r#"{"type":"flat_object"}"#,
                "unsigned_long",
            ),
            (
                root(Some("opensearch"), "2.7.0"),
                r#"{"type":"flat_object"}"#,
                "double",
            ),
            (
                root(Some("opensearch"), "2.3.0"),
                r#"{"type":"object","enabled":false}"#,
                "double",
            ),
            (
                root(None, "garbage"),
                r#"{"type":"flattened","ignore_above":8191,"depth_limit":100}"#,
                "unsigned_long",
            ),
        ];
        for (caps, json_expected, unsigned_expected) in cases {
            let expected: Value = serde_json::from_str(json_expected).unwrap();
            assert_eq!(searchable_json_mapping(caps), expected, "{caps:?}");
            assert_eq!(
                field_mapping(&json_col, caps),
                Some(json!({"type": "object", "enabled": false}))
            );
            assert_eq!(
                field_mapping(&big, caps).unwrap()["type"],
                unsigned_expected,
                "{caps:?}"
            );
        }
    }

    fn schema(columns: Vec<ColumnSpec>) -> TableSchema {
        TableSchema {
            db: "shop".into(),
            table: "orders".into(),
            columns,
            key: vec![0],
            index: "orders".into(),
            decoder_cache: Default::default(),
        }
    }

    #[test]
    fn overrides_replace_whole_definitions_and_body_carries_meta() {
        let s = schema(vec![
            col("id", MYSQL_TYPE_LONGLONG, &[], true, 0),
            col("title", MYSQL_TYPE_VARCHAR, &[40, 0], false, 255),
            col("v", MYSQL_TYPE_VECTOR, &[], false, 0),
        ]);
        let mut rule = TableRule {
            pattern: "shop.orders".into(),
            ..TableRule::default()
        };
        rule.mapping
            .insert("title".into(), json!({"type": "keyword"}));
        rule.mapping
            .insert("extra".into(), json!({"type": "keyword"}));
        rule.index_settings
            .insert("number_of_shards".into(), json!(1));
        let props = properties(&s, &rule, Capabilities::LATEST);
        let body = create_body(&s, &rule, &props, "f1", Some("orders"));
        assert_eq!(
            body,
            json!({
                "settings": {"number_of_shards": 1},
                "aliases": {"orders": {}},
                "mappings": {
                    "_meta": {
                        "created_by": "binlog2es",
                        "binlog2es_version": env!("CARGO_PKG_VERSION"),
                        "source_table": "shop.orders",
                        "rule_fingerprint": "f1"
                    },
                    "properties": {
                        "id": {"type": "unsigned_long"},
                        "title": {"type": "keyword"},
                        "extra": {"type": "keyword"}
                    }
                }
            })
        );
        let plain = TableRule::default();
        let props = properties(&s, &plain, Capabilities::LATEST);
        let body = create_body(&s, &plain, &props, "f1", None);
        assert!(body.get("settings").is_none(), "{body}");
        assert!(body.get("aliases").is_none(), "{body}");
    }

    #[test]
    fn shaped_fields_keep_their_columns_types() {
        let s = schema(vec![
            col("id", MYSQL_TYPE_LONGLONG, &[], true, 0),
            col("title", MYSQL_TYPE_VARCHAR, &[40, 0], false, 255),
            col("secret", MYSQL_TYPE_VARCHAR, &[40, 0], false, 255),
            col("updated_at", MYSQL_TYPE_DATETIME2, &[0], false, 0),
        ]);
        let mut rule = TableRule {
            pattern: "shop.orders".into(),
            exclude_columns: vec!["secret".into()],
            ..TableRule::default()
        };
        rule.rename.insert("updated_at".into(), "updated".into());
        rule.mapping
            .insert("title".into(), json!({"type": "keyword"}));
        let props = properties(&s, &rule, Capabilities::LATEST);
        assert_eq!(
            Value::Object(props),
            json!({
                "id": {"type": "unsigned_long"},
                "title": {"type": "keyword"},
                "updated": serde_json::from_str::<Value>(DATE).unwrap(),
            })
        );
    }

    #[test]
    fn relations_map_to_objects_nested_and_value_types() {
        use crate::config::document::{Relation, Through};
        use std::collections::BTreeMap;
        use std::sync::Arc;
        let table = |name: &str, columns: Vec<ColumnSpec>| {
            Arc::new(TableSchema {
                db: "blog".into(),
                table: name.into(),
                columns,
                key: vec![0],
                index: name.into(),
                decoder_cache: Default::default(),
            })
        };
        let article = table(
            "article",
            vec![
                col("id", MYSQL_TYPE_LONG, &[], false, 0),
                col("author_id", MYSQL_TYPE_LONG, &[], false, 0),
                col("updated_at", MYSQL_TYPE_DATETIME2, &[0], false, 0),
            ],
        );
        let user = table(
            "user",
            vec![
                col("id", MYSQL_TYPE_LONG, &[], false, 0),
                col("name", MYSQL_TYPE_VARCHAR, &[40, 0], false, 255),
            ],
        );
        let comment = table(
            "comment",
            vec![
                col("id", MYSQL_TYPE_LONGLONG, &[], true, 0),
                col("article_id", MYSQL_TYPE_LONG, &[], false, 0),
                col("user_id", MYSQL_TYPE_LONG, &[], false, 0),
            ],
        );
        let tag = table(
            "tag",
            vec![
                col("id", MYSQL_TYPE_LONG, &[], false, 0),
                col("name", MYSQL_TYPE_ENUM, &[], false, 255),
            ],
        );
        let link = table(
            "article_tag",
            vec![
                col("article_id", MYSQL_TYPE_LONG, &[], false, 0),
                col("tag_id", MYSQL_TYPE_LONG, &[], false, 0),
            ],
        );
        let rel = |field: &str, table: &str, on: &[(&str, &str)]| Relation {
            field: field.into(),
            table: table.into(),
            on: on.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect(),
            through: None,
            values: None,
            order_by: Vec::new(),
            include_columns: None,
            exclude_columns: Vec::new(),
            rename: BTreeMap::new(),
            where_any_of: BTreeMap::new(),
            where_null: Vec::new(),
            where_not_null: Vec::new(),
            join: Vec::new(),
            nest: Vec::new(),
        };
        let mut rule = TableRule {
            pattern: "blog.article".into(),
            ..TableRule::default()
        };
        rule.rename.insert("updated_at".into(), "updated".into());
        let mut author = rel("author", "user", &[("author_id", "id")]);
        author.include_columns = Some(vec!["name".into()]);
        rule.join.push(author);
        let mut comments = rel("comments", "comment", &[("id", "article_id")]);
        comments.exclude_columns = vec!["article_id".into()];
        let mut who = rel("user", "user", &[("user_id", "id")]);
        who.rename.insert("name".into(), "who".into());
        comments.join.push(who);
        rule.nest.push(comments);
        let mut tags = rel("tags", "tag", &[]);
        tags.through = Some(Through {
            table: "article_tag".into(),
            on: BTreeMap::from([("id".into(), "article_id".into())]),
            to: BTreeMap::from([("tag_id".into(), "id".into())]),
        });
        tags.values = Some("name".into());
        rule.nest.push(tags);
        let tables = [user, comment, tag, link];
        let plan = DocumentPlan::resolve(0, &rule, article, &mut |_, t| {
            tables.iter().find(|s| s.table == t).cloned()
        })
        .unwrap();
        let props = document_properties(&plan, Capabilities::LATEST);
        let text: Value = serde_json::from_str(TEXT).unwrap();
        assert_eq!(
            Value::Object(props),
            json!({
                "id": {"type": "long"},
                "author_id": {"type": "long"},
                "updated": serde_json::from_str::<Value>(DATE).unwrap(),
                "author": {"type": "object", "properties": {"name": text}},
                "comments": {"type": "nested", "properties": {
                    "id": {"type": "unsigned_long"},
                    "user_id": {"type": "long"},
                    "user": {"type": "object", "properties": {
                        "id": {"type": "long"},
                        "who": text,
                    }},
                }},
                "tags": {"type": "keyword"},
            })
        );
    }
}
