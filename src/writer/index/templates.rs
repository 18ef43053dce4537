//! Index templates: whether a template the user installed will shape a missing index
//! (then binlog2es leaves the index to it).

use std::collections::HashSet;

use reqwest::Method;
use serde_json::Value;

use super::{IndexManager, status_text};
use crate::es::path::segment;
use crate::writer::WriterError;

/// Whether an index template shapes a missing index.
pub(super) enum TemplateCheck {
    /// No template with a mapping matches: create the index ourselves.
    None,
    /// This template's mapping will apply (and its field names).
    Matches(String, HashSet<String>),
    /// Templates cannot be read (the reason); create nothing.
    Unknown(String),
}

impl IndexManager {
    /// Whether a template with a mapping will shape `index` when it is created.
    pub(super) async fn template_for(&mut self, index: &str) -> Result<TemplateCheck, WriterError> {
        let path = format!("/_index_template/_simulate_index/{}", segment(index));
        let (status, body) = self.send(index, Method::POST, &path, None).await?;
        match status {
            200 => {
                // `{}` when no composable template matches; otherwise the resolved template.
                // A composable match (even settings-only) disables legacy templates.
                if let Some(t) = body.get("template") {
                    return Ok(match mapping_fields(&t["mappings"]) {
                        Some(fields) => {
                            TemplateCheck::Matches("(composable index template)".into(), fields)
                        }
                        None => TemplateCheck::None,
                    });
                }
            }
            401 | 403 => return Ok(TemplateCheck::Unknown(status_text(status, &body))),
            _ => {
                // No simulate API: match the composable templates' patterns ourselves.
                let (status, body) = self
                    .send(index, Method::GET, "/_index_template", None)
                    .await?;
                match status {
                    200 => {
                        if let Some(found) = composable_match(&body, index) {
                            return Ok(found);
                        }
                    }
                    404 => {}
                    _ => return Ok(TemplateCheck::Unknown(status_text(status, &body))),
                }
            }
        }
        let (status, body) = self.send(index, Method::GET, "/_template", None).await?;
        match status {
            200 => Ok(legacy_match(&body, index).unwrap_or(TemplateCheck::None)),
            404 => Ok(TemplateCheck::None),
            _ => Ok(TemplateCheck::Unknown(status_text(status, &body))),
        }
    }
}

/// Field names of a template's mapping, or `None` when it has no mapping at all
/// (a settings-only template does not stop us from creating the index).
fn mapping_fields(mappings: &Value) -> Option<HashSet<String>> {
    let m = mappings.as_object()?;
    // Legacy templates of 7.x may still wrap the mapping in a type name (`_doc`).
    let m = match m.get("_doc").and_then(Value::as_object) {
        Some(inner) if m.len() == 1 => inner,
        _ => m,
    };
    if m.is_empty() {
        return None;
    }
    Some(
        m.get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

/// The highest-priority composable template (`GET /_index_template`) matching `index`,
/// when it brings a mapping (its own, or component templates: counted as a mapping,
/// since we cannot see inside them without more requests).
fn composable_match(body: &Value, index: &str) -> Option<TemplateCheck> {
    let best = body["index_templates"]
        .as_array()?
        .iter()
        .filter(|t| {
            t["index_template"]["index_patterns"]
                .as_array()
                .is_some_and(|ps| {
                    ps.iter()
                        .filter_map(Value::as_str)
                        .any(|p| pattern_matches(p, index))
                })
        })
        .max_by_key(|t| t["index_template"]["priority"].as_i64().unwrap_or(0))?;
    let name = best["name"].as_str().unwrap_or("?").to_owned();
    let tpl = &best["index_template"];
    let composed = tpl["composed_of"].as_array().is_some_and(|c| !c.is_empty());
    match mapping_fields(&tpl["template"]["mappings"]) {
        Some(fields) => Some(TemplateCheck::Matches(name, fields)),
        None if composed => Some(TemplateCheck::Matches(name, HashSet::new())),
        // A composable match without mapping still disables legacy templates.
        None => Some(TemplateCheck::None),
    }
}

/// A legacy template (`GET /_template`) with a mapping whose pattern matches `index`.
fn legacy_match(body: &Value, index: &str) -> Option<TemplateCheck> {
    body.as_object()?.iter().find_map(|(name, t)| {
        let matches = t["index_patterns"].as_array().is_some_and(|ps| {
            ps.iter()
                .filter_map(Value::as_str)
                .any(|p| pattern_matches(p, index))
        });
        if !matches {
            return None;
        }
        mapping_fields(&t["mappings"]).map(|f| TemplateCheck::Matches(name.clone(), f))
    })
}

/// An index pattern (`*` wildcards) against a name.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => name.strip_prefix(head).is_some_and(|tail| {
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| pattern_matches(rest, &tail[i..]))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_are_matched_by_pattern_priority_and_mapping() {
        let composable = json!({"index_templates": [
            {"name": "low", "index_template": {"index_patterns": ["ord*"], "priority": 1,
                "template": {"mappings": {"properties": {"x": {"type": "keyword"}}}}}},
            {"name": "settings-only", "index_template": {"index_patterns": ["orders"], "priority": 5,
                "template": {"settings": {"number_of_replicas": 0}}}},
            {"name": "components", "index_template": {"index_patterns": ["logs-*"],
                "composed_of": ["base"]}}
        ]});
        assert!(matches!(
            composable_match(&composable, "orders"),
            Some(TemplateCheck::None)
        ));
        assert!(matches!(
            composable_match(&composable, "ordinals"),
            Some(TemplateCheck::Matches(n, f)) if n == "low" && f.contains("x")
        ));
        assert!(matches!(
            composable_match(&composable, "logs-a"),
            Some(TemplateCheck::Matches(n, _)) if n == "components"
        ));
        assert!(composable_match(&composable, "users").is_none());
        let legacy = json!({
            "all": {"index_patterns": ["*"], "settings": {"number_of_shards": "1"}, "mappings": {}},
            "typed": {"index_patterns": ["shop.*"], "mappings": {"_doc": {"properties": {"y": {"type": "long"}}}}}
        });
        assert!(legacy_match(&legacy, "users").is_none());
        assert!(matches!(
            legacy_match(&legacy, "shop.orders"),
            Some(TemplateCheck::Matches(n, f)) if n == "typed" && f.contains("y")
        ));
        assert!(pattern_matches("shop.*", "shop.orders"));
        assert!(!pattern_matches("shop.*", "shopx"));
    }
}
