//! Netsoc's OpenAPI document (`../shared/reference/netsoc-iamd-api.yaml`) as a contract: an
//! answer's status must be one the operation lists, its media type the one listed for that
//! status, and its body valid against the listed schema (a JSON-schema validator, with
//! OpenAPI 3.0's `nullable` read as JSON Schema's `null` type).

use serde_json::{json, Map, Value};

pub struct Contract {
    document: Value,
}

/// OpenAPI 3.0 schema → JSON Schema: `nullable: true` adds `null` to the type, refs point
/// into `definitions`.
fn json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match k.as_str() {
                    "nullable" | "example" | "examples" => {}
                    "$ref" => {
                        let target =
                            v.as_str().unwrap_or_default().replace("#/components/schemas/", "#/definitions/");
                        out.insert(k.clone(), Value::String(target));
                    }
                    _ => {
                        out.insert(k.clone(), json_schema(v));
                    }
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), json!([t, "null"]));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

impl Contract {
    pub fn load() -> Contract {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/netsoc-iamd-api.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("the OpenAPI document is YAML");
        Contract { document: serde_json::to_value(yaml).expect("the OpenAPI document is JSON-shaped") }
    }

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                self.document.pointer(pointer).unwrap_or_else(|| panic!("unresolved {r}"))
            }
            None => value,
        }
    }

    /// Asserts that (`status`, `media`, `body`) is an answer `method` on `template` (a path
    /// of the document, e.g. `/users/{username}`) may give.
    pub fn check(&self, method: &str, template: &str, status: u16, media: &str, body: &Value) {
        let operation = self
            .document
            .pointer(&format!(
                "/paths/{}/{}",
                template.replace('~', "~0").replace('/', "~1"),
                method.to_lowercase()
            ))
            .unwrap_or_else(|| panic!("{method} {template} is not in the document"));
        let listed = operation["responses"]
            .get(status.to_string())
            .unwrap_or_else(|| panic!("{method} {template}: {status} is not a listed answer ({body})"));
        let listed = self.resolve(listed);
        let Some(content) = listed.get("content").and_then(Value::as_object) else {
            assert!(body.is_null(), "{method} {template} {status}: no content is listed, got {body}");
            return;
        };
        let media = media.split(';').next().unwrap_or_default().trim();
        let entry = content.get(media).unwrap_or_else(|| {
            panic!("{method} {template} {status}: media type {media:?} is not listed ({body})")
        });
        let mut schema = json_schema(&entry["schema"]);
        let definitions = json_schema(&self.document["components"]["schemas"]);
        schema.as_object_mut().expect("a schema object").insert("definitions".into(), definitions);
        let validator = jsonschema::draft7::new(&schema).expect("a valid schema");
        let errors: Vec<String> =
            validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {body} does not match the document: {errors:?}"
        );
    }
}
