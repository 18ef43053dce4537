//! A small Elasticsearch client for assertions.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::compare::Docs;

pub struct Es {
    url: String,
    http: reqwest::Client,
}

impl Es {
    pub fn new(url: &str) -> Self {
        Es {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Any request; returns the status and the JSON body (`null` if the body is not JSON).
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Makes every acknowledged write of `index` searchable; a missing index is fine.
    pub async fn refresh(&self, index: &str) {
        let (status, body) = self
            .request(Method::POST, &format!("/{index}/_refresh"), None)
            .await;
        assert!(
            status == 200 || status == StatusCode::NOT_FOUND.as_u16(),
            "refresh {index}: {status} {body}"
        );
    }

    /// Number of documents (after a refresh); 0 when the index does not exist.
    pub async fn count(&self, index: &str) -> u64 {
        self.refresh(index).await;
        let (status, body) = self
            .request(Method::GET, &format!("/{index}/_count"), None)
            .await;
        match status {
            200 => body["count"].as_u64().expect("count"),
            404 => 0,
            _ => panic!("count {index}: {status} {body}"),
        }
    }

    /// `_source` of one document (real-time GET, no refresh needed).
    pub async fn get(&self, index: &str, id: &str) -> Option<Value> {
        let path = format!("/{index}/_doc/{}", encode_path(id));
        match self.request(Method::GET, &path, None).await {
            (200, body) => Some(body["_source"].clone()),
            (404, _) => None,
            (status, body) => panic!("GET {path}: {status} {body}"),
        }
    }

    /// The raw body text of `GET /index/_doc/id` (the `_source` exactly as stored, number
    /// digits included, which a `serde_json::Value` would round); `None` when not found.
    pub async fn get_raw(&self, index: &str, id: &str) -> Option<String> {
        let path = format!("/{index}/_doc/{}", encode_path(id));
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        match status {
            200 => Some(text),
            404 => None,
            _ => panic!("GET {path}: {status} {text}"),
        }
    }

    /// `_version` of one document (real-time GET), if it exists.
    pub async fn version(&self, index: &str, id: &str) -> Option<u64> {
        let path = format!("/{index}/_doc/{}", encode_path(id));
        match self.request(Method::GET, &path, None).await {
            (200, body) => Some(body["_version"].as_u64().expect("_version")),
            (404, _) => None,
            (status, body) => panic!("GET {path}: {status} {body}"),
        }
    }

    /// Creates `index` with `body` (`{"mappings": …, "settings": …}`).
    pub async fn create_index(&self, index: &str, body: Value) {
        let (status, resp) = self
            .request(Method::PUT, &format!("/{index}"), Some(body))
            .await;
        assert_eq!(status, 200, "creating index {index}: {resp}");
    }

    /// `GET /index/_mapping`: the mapping of `index` (`mappings` of its one entry); `None`
    /// when the index does not exist.
    pub async fn mapping(&self, index: &str) -> Option<Value> {
        match self
            .request(Method::GET, &format!("/{index}/_mapping"), None)
            .await
        {
            (200, body) => Some(
                body.as_object()
                    .and_then(|o| o.values().next())
                    .map(|e| e["mappings"].clone())
                    .unwrap_or(Value::Null),
            ),
            (404, _) => None,
            (status, body) => panic!("GET /{index}/_mapping: {status} {body}"),
        }
    }

    /// The indices the alias `name` points to, sorted; empty when no such alias exists
    /// (also when `name` is a concrete index).
    pub async fn alias_targets(&self, name: &str) -> Vec<String> {
        match self
            .request(Method::GET, &format!("/_alias/{name}"), None)
            .await
        {
            (200, body) => {
                let mut targets: Vec<String> = body
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                targets.sort();
                targets
            }
            (404, _) => Vec::new(),
            (status, body) => panic!("GET /_alias/{name}: {status} {body}"),
        }
    }

    /// The concrete indices (not aliases) whose names match `pattern` (wildcards allowed),
    /// sorted; empty when none does.
    pub async fn indices(&self, pattern: &str) -> Vec<String> {
        let path = format!("/_resolve/index/{pattern}");
        match self.request(Method::GET, &path, None).await {
            (200, body) => {
                let mut names: Vec<String> = body["indices"]
                    .as_array()
                    .expect("_resolve/index lists indices")
                    .iter()
                    .map(|i| i["name"].as_str().expect("index name").to_string())
                    .collect();
                names.sort();
                names
            }
            (404, _) => Vec::new(),
            (status, body) => panic!("GET {path}: {status} {body}"),
        }
    }

    /// Indexes one document as it is (no versioning), refreshing the index.
    pub async fn put(&self, index: &str, id: &str, source: Value) {
        let path = format!("/{index}/_doc/{}?refresh=true", encode_path(id));
        let (status, body) = self.request(Method::PUT, &path, Some(source)).await;
        assert!(
            status == 200 || status == 201,
            "PUT {path}: {status} {body}"
        );
    }

    /// Every document of `index` (after a refresh) as `_id` → `_source`, read with the scroll
    /// API so it works for any size and any id type; empty when the index does not exist.
    pub async fn docs(&self, index: &str) -> Docs {
        let mut docs = Docs::new();
        for hit in self.hits(index).await {
            let id = hit["_id"].as_str().expect("_id").to_string();
            docs.insert(id, hit["_source"].clone());
        }
        docs
    }

    /// Every search hit of `index` (after a refresh): `_id`, `_source`, `_routing`…, read
    /// with the scroll API; empty when the index does not exist.
    pub async fn hits(&self, index: &str) -> Vec<Value> {
        self.refresh(index).await;
        let mut out = Vec::new();
        let (mut status, mut body) = self
            .request(
                Method::POST,
                &format!("/{index}/_search?scroll=1m"),
                Some(json!({"size": 10000, "sort": ["_doc"]})),
            )
            .await;
        if status == 404 {
            return out;
        }
        loop {
            assert_eq!(status, 200, "scrolling {index}: {body}");
            let hits = body["hits"]["hits"].as_array().expect("hits");
            if hits.is_empty() {
                break;
            }
            out.extend(hits.iter().cloned());
            let scroll_id = body["_scroll_id"].clone();
            (status, body) = self
                .request(
                    Method::POST,
                    "/_search/scroll",
                    Some(json!({"scroll": "1m", "scroll_id": scroll_id})),
                )
                .await;
        }
        if let Some(id) = body["_scroll_id"].as_str() {
            self.request(
                Method::DELETE,
                "/_search/scroll",
                Some(json!({"scroll_id": id})),
            )
            .await;
        }
        out
    }
}

/// Percent-encodes everything but unreserved characters (ids may hold `:`, `\`, `/`, `?`).
fn encode_path(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
