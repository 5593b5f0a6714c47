//! A validator for the swagger 2.0 schema subset the TM Forum v4 specifications use:
//! `type` (object, array, string, integer, number, boolean), `properties`, `required`,
//! `items`, `$ref` to `#/definitions/...`, `enum`, `minItems`/`maxItems` and the string
//! formats `date-time`, `uri` and `base64`.
//!
//! Attributes a schema does not name are accepted and kept: TMF630 extensibility lets a
//! sub-class (`@type`) carry attributes of its own.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

use crate::time;

/// Violations reported at most per validation (the rest are counted).
const MAX_VIOLATIONS: usize = 20;

/// A swagger definition could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaLoadError {
    #[error("the embedded swagger is not JSON: {0}")]
    Json(String),
    #[error("the swagger has no `definitions` object")]
    NoDefinitions,
    #[error("definition {definition}: {problem}")]
    Definition { definition: String, problem: String },
    #[error("definition {definition} refers to unknown definition {target}")]
    DanglingRef { definition: String, target: String },
    #[error("definition {0} is a cycle of $refs")]
    RefCycle(String),
}

/// String formats the validator checks; other formats are accepted as plain strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    DateTime,
    Uri,
    Base64,
    Unchecked,
}

/// One schema node.
#[derive(Debug, Clone, PartialEq)]
pub enum Schema {
    /// No constraint (`{}`, e.g. the `Any` definition).
    Any,
    /// `$ref: "#/definitions/<name>"`.
    Ref(String),
    Object {
        properties: BTreeMap<String, Schema>,
        required: Vec<String>,
    },
    Array {
        items: Option<Box<Schema>>,
        min_items: Option<usize>,
        max_items: Option<usize>,
    },
    String {
        format: StringFormat,
        allowed: Option<Vec<String>>,
    },
    Integer,
    Number,
    Boolean,
}

impl Schema {
    fn parse(node: &Value) -> Result<Self, String> {
        let Some(object) = node.as_object() else {
            return Err("schema is not an object".into());
        };
        if let Some(reference) = object.get("$ref") {
            let reference = reference.as_str().ok_or("$ref is not a string")?;
            let name = reference
                .strip_prefix("#/definitions/")
                .ok_or_else(|| format!("unsupported $ref {reference}"))?;
            return Ok(Self::Ref(name.to_string()));
        }
        let kind = match object.get("type") {
            None if object.contains_key("properties") => "object",
            None if object.contains_key("items") => "array",
            None => return Ok(Self::Any),
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => return Err(format!("unsupported type {other}")),
        };
        match kind {
            "object" => {
                let mut properties = BTreeMap::new();
                if let Some(props) = object.get("properties") {
                    let props = props.as_object().ok_or("properties is not an object")?;
                    for (name, sub) in props {
                        let sub = Self::parse(sub).map_err(|e| format!("{name}: {e}"))?;
                        properties.insert(name.clone(), sub);
                    }
                }
                let required = match object.get("required") {
                    None => Vec::new(),
                    Some(list) => list
                        .as_array()
                        .ok_or("required is not an array")?
                        .iter()
                        .map(|v| v.as_str().map(str::to_string).ok_or("required entry"))
                        .collect::<Result<_, _>>()?,
                };
                Ok(Self::Object {
                    properties,
                    required,
                })
            }
            "array" => {
                let items = match object.get("items") {
                    None => None,
                    Some(items) => Some(Box::new(Self::parse(items)?)),
                };
                let count = |key: &str| -> Result<Option<usize>, String> {
                    match object.get(key) {
                        None => Ok(None),
                        Some(v) => v
                            .as_u64()
                            .and_then(|n| usize::try_from(n).ok())
                            .map(Some)
                            .ok_or_else(|| format!("{key} is not a count")),
                    }
                };
                Ok(Self::Array {
                    items,
                    min_items: count("minItems")?,
                    max_items: count("maxItems")?,
                })
            }
            "string" => {
                let format = match object.get("format").and_then(Value::as_str) {
                    Some("date-time") => StringFormat::DateTime,
                    Some("uri") => StringFormat::Uri,
                    Some("base64") => StringFormat::Base64,
                    _ => StringFormat::Unchecked,
                };
                let allowed = match object.get("enum") {
                    None => None,
                    Some(list) => Some(
                        list.as_array()
                            .ok_or("enum is not an array")?
                            .iter()
                            .map(|v| v.as_str().map(str::to_string).ok_or("enum entry"))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                Ok(Self::String { format, allowed })
            }
            "integer" => Ok(Self::Integer),
            "number" => Ok(Self::Number),
            "boolean" => Ok(Self::Boolean),
            other => Err(format!("unsupported type {other}")),
        }
    }

    fn refs<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Ref(name) => out.push(name),
            Self::Object { properties, .. } => properties.values().for_each(|s| s.refs(out)),
            Self::Array {
                items: Some(items), ..
            } => items.refs(out),
            _ => {}
        }
    }
}

/// How strictly a document is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A complete representation: `required` is enforced and `null` is not a value.
    Full,
    /// A JSON merge-patch document: `required` is not enforced and an object member may be
    /// `null` (it removes the attribute). Array elements are complete values again.
    MergePatch,
}

/// One problem found in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where, e.g. `productSpecification.id` or `price[2].value`; empty for the root.
    pub path: String,
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "body: {}", self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

/// A document does not satisfy its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub violations: Vec<Violation>,
    /// Violations found beyond the reported ones.
    pub more: usize,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        if self.more > 0 {
            write!(f, "; and {} more", self.more)?;
        }
        Ok(())
    }
}

/// The `definitions` of one swagger file.
#[derive(Debug, Clone)]
pub struct Definitions {
    definitions: HashMap<String, Schema>,
}

impl Definitions {
    /// Parses a swagger document (or one holding just `definitions`) and checks that every
    /// `$ref` resolves.
    pub fn from_swagger_json(text: &str) -> Result<Self, SchemaLoadError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| SchemaLoadError::Json(e.to_string()))?;
        let defs = doc
            .get("definitions")
            .and_then(Value::as_object)
            .ok_or(SchemaLoadError::NoDefinitions)?;
        let mut definitions = HashMap::with_capacity(defs.len());
        for (name, node) in defs {
            let schema = Schema::parse(node).map_err(|problem| SchemaLoadError::Definition {
                definition: name.clone(),
                problem,
            })?;
            definitions.insert(name.clone(), schema);
        }
        for (name, schema) in &definitions {
            let mut refs = Vec::new();
            schema.refs(&mut refs);
            if let Some(target) = refs.iter().find(|r| !definitions.contains_key(**r)) {
                return Err(SchemaLoadError::DanglingRef {
                    definition: name.clone(),
                    target: target.to_string(),
                });
            }
        }
        // A definition that is only a `$ref` to itself (directly or through other bare
        // `$ref`s) would make validation recurse without consuming the document.
        for name in definitions.keys() {
            let mut seen = vec![name.as_str()];
            let mut current = &definitions[name];
            while let Schema::Ref(target) = current {
                if seen.contains(&target.as_str()) {
                    return Err(SchemaLoadError::RefCycle(name.clone()));
                }
                seen.push(target);
                current = &definitions[target];
            }
        }
        Ok(Self { definitions })
    }

    pub fn get(&self, name: &str) -> Option<&Schema> {
        self.definitions.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.definitions.contains_key(name)
    }

    /// Validates `value` against the definition `name`. An unknown definition name is a
    /// programming error and is reported as a violation at the root.
    pub fn validate(&self, name: &str, value: &Value, mode: Mode) -> Result<(), ValidationError> {
        let mut walker = Walker {
            defs: self,
            violations: Vec::new(),
            more: 0,
        };
        match self.definitions.get(name) {
            Some(schema) => walker.check(schema, value, &mut String::new(), mode),
            None => walker.report("", format!("no schema named {name}")),
        }
        if walker.violations.is_empty() {
            Ok(())
        } else {
            Err(ValidationError {
                violations: walker.violations,
                more: walker.more,
            })
        }
    }
}

struct Walker<'a> {
    defs: &'a Definitions,
    violations: Vec<Violation>,
    more: usize,
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Walker<'_> {
    fn report(&mut self, path: &str, problem: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                path: path.to_string(),
                problem,
            });
        } else {
            self.more += 1;
        }
    }

    fn expected(&mut self, path: &str, what: &str, value: &Value) {
        let problem = format!("must be {what}, not {}", kind_of(value));
        self.report(path, problem);
    }

    fn check(&mut self, schema: &Schema, value: &Value, path: &mut String, mode: Mode) {
        match schema {
            Schema::Any => {}
            Schema::Ref(name) => match self.defs.definitions.get(name) {
                Some(target) => self.check(target, value, path, mode),
                None => self.report(path, format!("schema {name} is missing")),
            },
            Schema::Boolean => {
                if !value.is_boolean() {
                    self.expected(path, "a boolean", value);
                }
            }
            Schema::Number => {
                if !value.is_number() {
                    self.expected(path, "a number", value);
                }
            }
            Schema::Integer => {
                // Swagger 2.0 schemas are JSON Schema draft 4: an integer is a number written
                // without fraction or exponent (`2.0` is not one). Integers beyond 64 bits
                // would be stored as floats and served back as `1e+29`, so they are refused
                // too.
                if !(value.is_i64() || value.is_u64()) {
                    if value.is_number() {
                        self.report(
                            path,
                            "must be an integer (no fraction or exponent, 64-bit range)".into(),
                        );
                    } else {
                        self.expected(path, "an integer", value);
                    }
                }
            }
            Schema::String { format, allowed } => {
                let Some(text) = value.as_str() else {
                    self.expected(path, "a string", value);
                    return;
                };
                if let Some(allowed) = allowed {
                    if !allowed.iter().any(|a| a == text) {
                        let problem = format!("must be one of {}", allowed.join(", "));
                        self.report(path, problem);
                    }
                }
                match format {
                    StringFormat::DateTime if time::parse_rfc3339(text).is_none() => {
                        self.report(
                            path,
                            format!(
                                "must be an RFC 3339 date-time such as \
                                 2024-05-01T12:00:00Z, not {text:?}"
                            ),
                        );
                    }
                    StringFormat::Uri if !is_uri(text) => {
                        self.report(
                            path,
                            "must be an absolute URI (RFC 3986), such as https://example.com/x"
                                .into(),
                        );
                    }
                    StringFormat::Base64 if !is_base64_like(text) => {
                        self.report(path, "must be base64".into());
                    }
                    _ => {}
                }
            }
            Schema::Array {
                items,
                min_items,
                max_items,
            } => {
                let Some(elements) = value.as_array() else {
                    self.expected(path, "an array", value);
                    return;
                };
                if let Some(min) = min_items {
                    if elements.len() < *min {
                        self.report(path, format!("must have at least {min} elements"));
                    }
                }
                if let Some(max) = max_items {
                    if elements.len() > *max {
                        self.report(path, format!("must have at most {max} elements"));
                    }
                }
                if let Some(items) = items {
                    for (i, element) in elements.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        // An array is replaced whole by a merge patch: its elements are
                        // complete values.
                        self.check(items, element, path, Mode::Full);
                        path.truncate(len);
                    }
                }
            }
            Schema::Object {
                properties,
                required,
            } => {
                let Some(members) = value.as_object() else {
                    self.expected(path, "an object", value);
                    return;
                };
                if mode == Mode::Full {
                    for name in required {
                        if !members.contains_key(name) {
                            let child = child_path(path, name);
                            self.report(&child, "required attribute is missing".into());
                        }
                    }
                }
                for (name, member) in members {
                    let Some(sub) = properties.get(name) else {
                        continue; // extension attribute: kept as is
                    };
                    if member.is_null() && mode == Mode::MergePatch {
                        continue; // removes the attribute
                    }
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                    self.check(sub, member, path, mode);
                    path.truncate(len);
                }
            }
        }
    }
}

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// An RFC 3986 `URI` (absolute: a scheme is required; a fragment is allowed), the JSON Schema
/// `uri` format. Relative references such as `x` or `/a/b` are not URIs, nor is text with
/// spaces or non-ASCII characters (those are IRIs: percent-encode them).
pub fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.bytes();
    if !scheme_chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        || !scheme_chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return false;
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (rest, None),
    };
    let (hier, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let tail_ok = |part: Option<&str>| {
        part.is_none_or(|p| uri_chars_ok(p, |b| is_pchar(b) || b == b'/' || b == b'?'))
    };
    if !tail_ok(query) || !tail_ok(fragment) {
        return false;
    }
    let path = match hier.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            if !is_authority(&after[..end]) {
                return false;
            }
            &after[end..]
        }
        None => hier,
    };
    uri_chars_ok(path, |b| is_pchar(b) || b == b'/')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@'
}

/// Every byte is `allowed` or part of a `%XX` escape.
fn uri_chars_ok(text: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
        } else if allowed(bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `[ userinfo "@" ] host [ ":" port ]`.
fn is_authority(authority: &str) -> bool {
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    if userinfo
        .is_some_and(|u| !uri_chars_ok(u, |b| is_unreserved(b) || is_sub_delim(b) || b == b':'))
    {
        return false;
    }
    let (host, port) = if let Some(literal) = host_port.strip_prefix('[') {
        let Some((inside, after)) = literal.split_once(']') else {
            return false;
        };
        if !is_ip_literal(inside) {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", port),
                None => return false,
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (host_port, ""),
        }
    };
    port.bytes().all(|b| b.is_ascii_digit())
        && uri_chars_ok(host, |b| is_unreserved(b) || is_sub_delim(b))
}

/// The inside of `[...]`: an IPv6 address or `v<hex>.<text>` (IPvFuture).
fn is_ip_literal(inside: &str) -> bool {
    if let Some(future) = inside.strip_prefix(['v', 'V']) {
        let Some((version, text)) = future.split_once('.') else {
            return false;
        };
        return !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_hexdigit())
            && !text.is_empty()
            && text
                .bytes()
                .all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    inside.parse::<std::net::Ipv6Addr>().is_ok() && !inside.contains('%')
}

fn is_base64_like(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_' | '\r' | '\n')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs() -> Definitions {
        let doc = json!({"definitions": {
            "Thing_Create": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "count": {"type": "integer"},
                    "ratio": {"type": "number", "format": "float"},
                    "flag": {"type": "boolean"},
                    "when": {"type": "string", "format": "date-time"},
                    "link": {"type": "string", "format": "uri"},
                    "blob": {"type": "string", "format": "base64"},
                    "state": {"type": "string", "enum": ["Not Started", "Running"]},
                    "period": {"$ref": "#/definitions/TimePeriod"},
                    "refs": {"type": "array", "items": {"$ref": "#/definitions/Ref"}},
                    "pair": {"type": "array", "minItems": 2, "maxItems": 2,
                             "items": {"type": "string"}},
                    "anything": {"$ref": "#/definitions/Any"}
                }
            },
            "TimePeriod": {"type": "object", "properties": {
                "startDateTime": {"type": "string", "format": "date-time"},
                "endDateTime": {"type": "string", "format": "date-time"}
            }},
            "Ref": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string"}, "href": {"type": "string"}
            }},
            "Any": {}
        }});
        Definitions::from_swagger_json(&doc.to_string()).unwrap()
    }

    fn problems(value: Value, mode: Mode) -> Vec<String> {
        match defs().validate("Thing_Create", &value, mode) {
            Ok(()) => Vec::new(),
            Err(e) => e.violations.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn accepts_a_valid_document_with_extensions() {
        let doc = json!({
            "name": "x", "count": 3, "ratio": 0.5, "flag": true,
            "when": "2024-01-01T00:00:00Z", "link": "https://example.com/a",
            "blob": "aGVsbG8=", "state": "Running",
            "period": {"startDateTime": "2024-01-01T00:00:00+02:00"},
            "refs": [{"id": "1"}, {"id": "2", "href": "x", "@referredType": "Y"}],
            "pair": ["a", "b"], "anything": {"deep": [1, null]},
            "myExtension": {"whatever": 1}, "@type": "ThingSubclass"
        });
        assert_eq!(problems(doc, Mode::Full), Vec::<String>::new());
        assert_eq!(
            problems(json!({"name": "x", "count": 2.0}), Mode::Full),
            ["count: must be an integer (no fraction or exponent, 64-bit range)"]
        );
        let huge: Value =
            serde_json::from_str(r#"{"name": "x", "count": 144437103484003436887046881280}"#)
                .unwrap();
        assert_eq!(
            problems(huge, Mode::Full),
            ["count: must be an integer (no fraction or exponent, 64-bit range)"]
        );
    }

    #[test]
    fn reports_precise_paths_and_problems() {
        let doc = json!({
            "count": "3", "ratio": "x", "flag": 1, "when": "yesterday",
            "link": "has space", "blob": "***", "state": "Done",
            "period": {"endDateTime": 5},
            "refs": [{"id": "1"}, {"href": "x"}, 7],
            "pair": ["a"]
        });
        let got = problems(doc, Mode::Full);
        let expected = [
            "name: required attribute is missing",
            "blob: must be base64",
            "count: must be an integer, not a string",
            "flag: must be a boolean, not a number",
            "link: must be an absolute URI (RFC 3986), such as https://example.com/x",
            "pair: must have at least 2 elements",
            "period.endDateTime: must be a string, not a number",
            "ratio: must be a number, not a string",
            "refs[1].id: required attribute is missing",
            "refs[2]: must be an object, not a number",
            "state: must be one of Not Started, Running",
        ];
        for e in expected {
            assert!(got.iter().any(|g| g == e), "missing {e:?} in {got:#?}");
        }
        assert!(got
            .iter()
            .any(|g| g.starts_with("when: must be an RFC 3339 date-time")));
        assert_eq!(got.len(), expected.len() + 1, "{got:#?}");
    }

    #[test]
    fn uris_follow_rfc_3986() {
        for good in [
            "https://example.com/a",
            "http://user:pw@127.0.0.1:8080/p/a%20b?q=1&r=a/b?c#frag/x?",
            "urn:isbn:0451450523",
            "mailto:someone@example.com",
            "https://[::1]:8443/x",
            "http://[v7.fe80::a+en1]/",
            "file:///etc/hosts",
            "a:",
            "x-y.z+w:rootless:path@x",
            "https://e.net",
            "http://h:/empty-port",
        ] {
            assert!(is_uri(good), "{good:?} should be a URI");
        }
        for bad in [
            "",
            "p",
            "/a/b",
            "//host/x",
            "has space:x",
            "1http://x",
            "https://exa mple.com",
            "https://example.com/é",
            "https://x/%zz",
            "https://x/%4",
            "http://[::1/x",
            "http://[zz]/",
            "http://h:8o/",
            "http://a b@h/",
            "https://x/a\\b",
            "https://x/<b>",
            "https://x/?q=\"\"",
            "https://x/#a#b",
            "http://[::1]x/",
        ] {
            assert!(!is_uri(bad), "{bad:?} should not be a URI");
        }
    }

    #[test]
    fn root_must_be_an_object() {
        assert_eq!(
            problems(json!([1]), Mode::Full),
            ["body: must be an object, not an array"]
        );
        assert_eq!(
            problems(json!(null), Mode::MergePatch),
            ["body: must be an object, not null"]
        );
    }

    #[test]
    fn null_is_a_removal_only_in_merge_patch_members() {
        assert_eq!(
            problems(json!({"name": "x", "count": null}), Mode::Full),
            ["count: must be an integer, not null"]
        );
        assert!(problems(
            json!({"count": null, "period": {"endDateTime": null}}),
            Mode::MergePatch
        )
        .is_empty());
        // required is not enforced in a patch, but it is inside replaced array elements
        assert_eq!(
            problems(json!({"refs": [{"href": "x"}]}), Mode::MergePatch),
            ["refs[0].id: required attribute is missing"]
        );
        assert_eq!(
            problems(json!({"refs": [null]}), Mode::MergePatch),
            ["refs[0]: must be an object, not null"]
        );
    }

    #[test]
    fn caps_the_number_of_reported_violations() {
        let refs: Vec<Value> = (0..30).map(|_| json!({})).collect();
        let err = defs()
            .validate(
                "Thing_Create",
                &json!({"name": "x", "refs": refs}),
                Mode::Full,
            )
            .unwrap_err();
        assert_eq!(err.violations.len(), MAX_VIOLATIONS);
        assert_eq!(err.more, 10);
        assert!(err.to_string().ends_with("; and 10 more"));
    }

    #[test]
    fn load_errors_are_typed() {
        assert!(matches!(
            Definitions::from_swagger_json("{"),
            Err(SchemaLoadError::Json(_))
        ));
        assert_eq!(
            Definitions::from_swagger_json("{}").unwrap_err(),
            SchemaLoadError::NoDefinitions
        );
        let dangling = json!({"definitions": {"A": {"$ref": "#/definitions/B"}}});
        assert_eq!(
            Definitions::from_swagger_json(&dangling.to_string()).unwrap_err(),
            SchemaLoadError::DanglingRef {
                definition: "A".into(),
                target: "B".into()
            }
        );
        let cycle = json!({"definitions": {
            "A": {"$ref": "#/definitions/B"}, "B": {"$ref": "#/definitions/A"},
            "C": {"type": "object", "properties": {"c": {"$ref": "#/definitions/C"}}}
        }});
        assert!(matches!(
            Definitions::from_swagger_json(&cycle.to_string()),
            Err(SchemaLoadError::RefCycle(_))
        ));
        let recursive = json!({"definitions": {
            "C": {"type": "object", "properties": {"c": {"$ref": "#/definitions/C"}}}
        }});
        let recursive = Definitions::from_swagger_json(&recursive.to_string()).unwrap();
        assert!(recursive
            .validate("C", &json!({"c": {"c": {}}}), Mode::Full)
            .is_ok());
        let odd = json!({"definitions": {"A": {"type": "tuple"}}});
        assert!(matches!(
            Definitions::from_swagger_json(&odd.to_string()),
            Err(SchemaLoadError::Definition { .. })
        ));
        let unknown = defs().validate("Nope", &json!({}), Mode::Full).unwrap_err();
        assert_eq!(unknown.violations[0].problem, "no schema named Nope");
    }
}
