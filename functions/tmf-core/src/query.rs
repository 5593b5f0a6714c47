//! The TMF630 query language for collection reads (and hub registration queries).
//!
//! - `fields=a,b.c` selects attributes (`id` and `href` are always returned);
//! - `attr=value` is an exact match; `attr=v1,v2` matches either value; several filters are
//!   combined with AND; `a.b.c` walks into nested objects, and into every element of arrays;
//! - operators: `attr.gt=`, `.gte`, `.lt`, `.lte`, `.eq`, `.regex` and the TMF630 forms
//!   `attr>=v` / `attr<=v` (`attr>v` / `attr<v` without `=`). Values compare as instants
//!   when both sides are date-times, as numbers when both are numeric, else as strings;
//! - `sort=a,-b` orders by `a` ascending then `b` descending; missing values sort last;
//! - `offset` and `limit` page the result; `limit` above the maximum is refused.
//!
//! Every malformed expression is a typed [`QueryError`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use crate::error::{ErrorCode, TmfError};
use crate::time;

/// Bounds on what a query may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Largest accepted `limit`, and the page size when no `limit` is sent.
    pub max_limit: usize,
    /// Longest accepted `.regex` pattern, in bytes.
    pub max_regex_len: usize,
    /// Compiled size limit of one regex (bytes), see `regex::RegexBuilder::size_limit`.
    pub regex_size_limit: usize,
    /// Most filters in one query.
    pub max_filters: usize,
    /// Most values (comma-separated) in one filter.
    pub max_values: usize,
    /// Deepest attribute path.
    pub max_path_depth: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_limit: 1000,
            max_regex_len: 256,
            regex_size_limit: 1 << 20,
            max_filters: 32,
            max_values: 64,
            max_path_depth: 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query parameter {0:?} is given more than once")]
    Duplicate(String),
    #[error("{param}={value:?}: expected a non-negative integer")]
    NotACount { param: String, value: String },
    #[error("limit={limit} is above the maximum page size {max}")]
    LimitTooLarge { limit: String, max: usize },
    #[error("{0:?} is not a valid attribute path")]
    BadPath(String),
    #[error("{0}: a value is required")]
    EmptyValue(String),
    #[error("{param}: invalid regular expression: {reason}")]
    BadRegex { param: String, reason: String },
    #[error("query parameter {0:?} is not supported")]
    Unsupported(String),
    #[error("too many filters (at most {0})")]
    TooManyFilters(usize),
    #[error("{param}: too many values (at most {max})")]
    TooManyValues { param: String, max: usize },
    #[error("{0:?} cannot be used in a notification query")]
    NotAFilter(String),
    #[error("query parameter {0:?} applies to collections; a single entity takes only `fields`")]
    NotForEntity(String),
}

impl From<QueryError> for TmfError {
    fn from(e: QueryError) -> Self {
        let code = match e {
            QueryError::LimitTooLarge { .. } => ErrorCode::LimitTooLarge,
            _ => ErrorCode::InvalidQuery,
        };
        TmfError::new(code, e.to_string())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
    Regex,
}

impl Op {
    fn from_suffix(suffix: &str) -> Option<Self> {
        match suffix {
            "eq" => Some(Self::Eq),
            "gt" => Some(Self::Gt),
            "gte" => Some(Self::Gte),
            "lt" => Some(Self::Lt),
            "lte" => Some(Self::Lte),
            "regex" => Some(Self::Regex),
            _ => None,
        }
    }
}

/// One filter: the attribute at `path` satisfies `op` for at least one of `values`.
#[derive(Debug, Clone)]
pub struct Filter {
    pub path: Vec<String>,
    pub op: Op,
    pub values: Vec<String>,
    regex: Option<Regex>,
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.op == other.op && self.values == other.values
    }
}

impl Filter {
    /// Whether `document` satisfies this filter.
    pub fn matches(&self, document: &Value) -> bool {
        let mut leaves = Vec::new();
        collect(document, &self.path, &mut leaves);
        leaves.iter().any(|leaf| self.leaf_matches(leaf))
    }

    fn leaf_matches(&self, leaf: &Value) -> bool {
        if let Some(regex) = &self.regex {
            return match leaf {
                Value::String(s) => regex.is_match(s),
                Value::Number(n) => regex.is_match(&n.to_string()),
                Value::Bool(b) => regex.is_match(if *b { "true" } else { "false" }),
                _ => false,
            };
        }
        self.values.iter().any(|wanted| match self.op {
            Op::Eq => equals(leaf, wanted),
            Op::Gt => compare(leaf, wanted) == Some(Ordering::Greater),
            Op::Gte => matches!(
                compare(leaf, wanted),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Op::Lt => compare(leaf, wanted) == Some(Ordering::Less),
            Op::Lte => matches!(
                compare(leaf, wanted),
                Some(Ordering::Less | Ordering::Equal)
            ),
            Op::Regex => false,
        })
    }
}

/// One `sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub path: Vec<String>,
    pub descending: bool,
}

/// The attributes `fields` selects, as a tree of paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelection {
    /// The whole value is selected (a path ended here).
    whole: bool,
    children: BTreeMap<String, FieldSelection>,
}

impl FieldSelection {
    fn add(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.whole = true,
            Some((head, rest)) => self.children.entry(head.clone()).or_default().add(rest),
        }
    }

    /// Keeps only the selected attributes of `value` (applied to every element of arrays).
    fn project(&self, value: &Value) -> Value {
        if self.whole {
            return value.clone();
        }
        match value {
            Value::Object(members) => {
                let mut out = Map::new();
                for (name, selection) in &self.children {
                    if let Some(member) = members.get(name) {
                        out.insert(name.clone(), selection.project(member));
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|i| self.project(i)).collect()),
            other => other.clone(),
        }
    }
}

/// A parsed collection query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `None`: every attribute.
    pub fields: Option<FieldSelection>,
    pub filters: Vec<Filter>,
    pub sort: Vec<SortKey>,
    pub offset: usize,
    /// The page size: the `limit` sent, else the maximum.
    pub limit: usize,
}

/// Attributes every projection keeps.
pub const ALWAYS_SELECTED: [&str; 2] = ["id", "href"];

impl Query {
    /// Parses a raw (still percent-encoded) query string, without the leading `?`.
    pub fn parse(raw: &str, limits: &QueryLimits) -> Result<Self, QueryError> {
        let mut query = Self {
            fields: None,
            filters: Vec::new(),
            sort: Vec::new(),
            offset: 0,
            limit: limits.max_limit,
        };
        let mut seen_sort = false;
        let mut seen_offset = false;
        let mut seen_limit = false;
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            match key.as_ref() {
                "fields" => {
                    let selection = query.fields.get_or_insert_with(FieldSelection::default);
                    for field in split_list(&value) {
                        selection.add(&parse_path(field, limits)?);
                    }
                    if split_list(&value).next().is_none() {
                        return Err(QueryError::EmptyValue("fields".into()));
                    }
                }
                "sort" => {
                    if std::mem::replace(&mut seen_sort, true) {
                        return Err(QueryError::Duplicate("sort".into()));
                    }
                    for key in split_list(&value) {
                        let (descending, name) = match key.strip_prefix('-') {
                            Some(rest) => (true, rest),
                            None => (false, key.strip_prefix('+').unwrap_or(key)),
                        };
                        query.sort.push(SortKey {
                            path: parse_path(name.trim(), limits)?,
                            descending,
                        });
                    }
                    if query.sort.is_empty() {
                        return Err(QueryError::EmptyValue("sort".into()));
                    }
                }
                "offset" => {
                    if std::mem::replace(&mut seen_offset, true) {
                        return Err(QueryError::Duplicate("offset".into()));
                    }
                    query.offset = parse_count("offset", &value)?;
                }
                "limit" => {
                    if std::mem::replace(&mut seen_limit, true) {
                        return Err(QueryError::Duplicate("limit".into()));
                    }
                    let limit = parse_count("limit", &value).map_err(|e| match e {
                        // digits, but too many for usize: still "too large"
                        QueryError::NotACount { value, .. }
                            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            QueryError::LimitTooLarge {
                                limit: value,
                                max: limits.max_limit,
                            }
                        }
                        other => other,
                    })?;
                    if limit > limits.max_limit {
                        return Err(QueryError::LimitTooLarge {
                            limit: value.into_owned(),
                            max: limits.max_limit,
                        });
                    }
                    query.limit = limit;
                }
                "expand" | "depth" => return Err(QueryError::Unsupported(key.into_owned())),
                _ => {
                    let filter = parse_filter(&key, &value, limits, false)?;
                    query.filters.push(filter);
                    if query.filters.len() > limits.max_filters {
                        return Err(QueryError::TooManyFilters(limits.max_filters));
                    }
                }
            }
        }
        Ok(query)
    }

    /// Parses the query of a single-entity read, where only `fields` is meaningful.
    pub fn parse_selection(raw: &str, limits: &QueryLimits) -> Result<Self, QueryError> {
        if let Some((key, _)) = form_urlencoded::parse(raw.as_bytes()).find(|(k, _)| k != "fields")
        {
            return Err(QueryError::NotForEntity(key.into_owned()));
        }
        Self::parse(raw, limits)
    }

    /// Whether `entity` passes every filter.
    pub fn matches(&self, entity: &Value) -> bool {
        self.filters.iter().all(|f| f.matches(entity))
    }

    /// Orders `items` by the sort keys (stable: equal items keep their order).
    pub fn sort_items(&self, items: &mut [Value]) {
        if self.sort.is_empty() {
            return;
        }
        items.sort_by(|a, b| {
            for key in &self.sort {
                let ordering = compare_for_sort(
                    first_leaf(a, &key.path),
                    first_leaf(b, &key.path),
                    key.descending,
                );
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            Ordering::Equal
        });
    }

    /// Applies `fields` to one entity (identity when no `fields` was given).
    pub fn project(&self, entity: &Value) -> Value {
        let Some(selection) = &self.fields else {
            return entity.clone();
        };
        let mut projected = selection.project(entity);
        if let (Value::Object(out), Value::Object(members)) = (&mut projected, entity) {
            for name in ALWAYS_SELECTED {
                if let Some(v) = members.get(name) {
                    out.insert(name.to_string(), v.clone());
                }
            }
        }
        projected
    }

    /// The index range of the requested page within `total` matching items.
    pub fn page(&self, total: usize) -> std::ops::Range<usize> {
        let start = self.offset.min(total);
        let end = start.saturating_add(self.limit).min(total);
        start..end
    }

    /// Filters, sorts, pages and projects `items`. Returns the page and the number of items
    /// that matched (the `X-Total-Count`).
    pub fn apply(&self, items: Vec<Value>) -> (Vec<Value>, usize) {
        let mut collector = self.collector();
        for item in items {
            collector.push(item);
        }
        collector.finish()
    }

    /// An incremental [`apply`](Self::apply), for items that arrive page by page.
    pub fn collector(&self) -> PageCollector<'_> {
        PageCollector {
            query: self,
            kept: Vec::new(),
            total: 0,
        }
    }
}

/// Collects the answer of a [`Query`] from items fed one at a time (in the store's order),
/// keeping only what the answer can contain: without `sort`, the first `offset + limit`
/// matching items; with `sort`, every matching item. Items that do not match are dropped at
/// once, so a list holds at most one store page of non-matching items in memory.
#[derive(Debug)]
pub struct PageCollector<'q> {
    query: &'q Query,
    kept: Vec<Value>,
    total: usize,
}

impl PageCollector<'_> {
    /// Considers one more item.
    pub fn push(&mut self, item: Value) {
        if !self.query.matches(&item) {
            return;
        }
        self.total += 1;
        let unsorted_enough = self.query.sort.is_empty()
            && self.kept.len() >= self.query.offset.saturating_add(self.query.limit);
        if !unsorted_enough {
            self.kept.push(item);
        }
    }

    /// The page (sorted, paged, projected) and the number of matching items.
    pub fn finish(self) -> (Vec<Value>, usize) {
        let Self {
            query,
            mut kept,
            total,
        } = self;
        let range = if query.sort.is_empty() {
            // `kept` is the first `offset + limit` matching items (or all of them).
            query.offset.min(kept.len())..kept.len()
        } else {
            query.sort_items(&mut kept);
            query.page(total)
        };
        let page = if query.fields.is_none() {
            kept.drain(range).collect()
        } else {
            kept[range].iter().map(|i| query.project(i)).collect()
        };
        (page, total)
    }
}

/// A notification query (`EventSubscriptionInput.query`): filters only, e.g.
/// `eventType=ProductOfferingCreateEvent&event.productOffering.lifecycleStatus=Launched`.
/// Spaces around names and values are ignored and a leading `?` is allowed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterSet {
    pub filters: Vec<Filter>,
}

impl FilterSet {
    pub fn parse(raw: &str, limits: &QueryLimits) -> Result<Self, QueryError> {
        let raw = raw.trim();
        let raw = raw.strip_prefix('?').unwrap_or(raw);
        let mut filters = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let key = key.trim();
            if key.is_empty() && value.trim().is_empty() {
                continue;
            }
            if matches!(
                key,
                "fields" | "sort" | "offset" | "limit" | "expand" | "depth"
            ) {
                return Err(QueryError::NotAFilter(key.to_string()));
            }
            filters.push(parse_filter(key, value.trim(), limits, true)?);
            if filters.len() > limits.max_filters {
                return Err(QueryError::TooManyFilters(limits.max_filters));
            }
        }
        Ok(Self { filters })
    }

    pub fn matches(&self, document: &Value) -> bool {
        self.filters.iter().all(|f| f.matches(document))
    }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_count(param: &str, value: &str) -> Result<usize, QueryError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::NotACount {
            param: param.into(),
            value: value.into(),
        });
    }
    trimmed.parse().map_err(|_| QueryError::NotACount {
        param: param.into(),
        value: value.into(),
    })
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 128
        && segment.chars().all(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !matches!(
                    c,
                    ',' | ';'
                        | '('
                        | ')'
                        | '['
                        | ']'
                        | '{'
                        | '}'
                        | '<'
                        | '>'
                        | '='
                        | '&'
                        | '"'
                        | '\''
                        | '\\'
                )
        })
}

fn parse_path(text: &str, limits: &QueryLimits) -> Result<Vec<String>, QueryError> {
    let segments: Vec<String> = text.split('.').map(str::to_string).collect();
    if segments.len() > limits.max_path_depth || !segments.iter().all(|s| valid_segment(s)) {
        return Err(QueryError::BadPath(text.to_string()));
    }
    Ok(segments)
}

/// Parses one `name=value` pair into a filter. `name` may end with an operator suffix
/// (`.gt`...) or with `>`/`<` (from `a>=v`), or contain `>`/`<` (from `a>v`, whose value is
/// then empty).
fn parse_filter(
    key: &str,
    value: &str,
    limits: &QueryLimits,
    hub: bool,
) -> Result<Filter, QueryError> {
    let (name, op, value) = if let Some(name) = key.strip_suffix('>') {
        (name, Op::Gte, value)
    } else if let Some(name) = key.strip_suffix('<') {
        (name, Op::Lte, value)
    } else if let Some(at) = key.find(['>', '<']) {
        if !value.is_empty() {
            return Err(QueryError::BadPath(key.to_string()));
        }
        let op = if key.as_bytes()[at] == b'>' {
            Op::Gt
        } else {
            Op::Lt
        };
        (&key[..at], op, &key[at + 1..])
    } else {
        match key.rsplit_once('.') {
            Some((name, suffix)) => match Op::from_suffix(suffix) {
                Some(op) => (name, op, value),
                None => (key, Op::Eq, value),
            },
            None => (key, Op::Eq, value),
        }
    };
    let path = parse_path(name.trim(), limits)?;
    if value.is_empty() {
        return Err(QueryError::EmptyValue(key.to_string()));
    }
    if op == Op::Regex {
        if value.len() > limits.max_regex_len {
            return Err(QueryError::BadRegex {
                param: key.to_string(),
                reason: format!("longer than {} bytes", limits.max_regex_len),
            });
        }
        let regex = RegexBuilder::new(value)
            .size_limit(limits.regex_size_limit)
            .dfa_size_limit(limits.regex_size_limit)
            .nest_limit(32)
            .build()
            .map_err(|e| QueryError::BadRegex {
                param: key.to_string(),
                reason: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .to_string(),
            })?;
        return Ok(Filter {
            path,
            op,
            values: vec![value.to_string()],
            regex: Some(regex),
        });
    }
    let values: Vec<String> = value
        .split(',')
        .map(|v| if hub { v.trim() } else { v })
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    if values.is_empty() {
        return Err(QueryError::EmptyValue(key.to_string()));
    }
    if values.len() > limits.max_values {
        return Err(QueryError::TooManyValues {
            param: key.to_string(),
            max: limits.max_values,
        });
    }
    Ok(Filter {
        path,
        op,
        values,
        regex: None,
    })
}

/// Every value at `path` below `value`, walking into every element of arrays on the way and
/// flattening arrays found at the end.
fn collect<'v>(value: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| collect(item, path, out)),
        Value::Object(members) => match path.split_first() {
            Some((head, rest)) => {
                if let Some(member) = members.get(head) {
                    collect(member, rest, out);
                }
            }
            None => out.push(value),
        },
        _ if path.is_empty() => out.push(value),
        _ => {}
    }
}

fn first_leaf<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut leaves = Vec::new();
    collect(value, path, &mut leaves);
    leaves.into_iter().find(|v| !v.is_null())
}

fn number_text_equal(n: &serde_json::Number, wanted: &str) -> bool {
    if n.to_string() == wanted {
        return true;
    }
    match (n.as_f64(), wanted.trim().parse::<f64>()) {
        (Some(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn equals(leaf: &Value, wanted: &str) -> bool {
    match leaf {
        Value::String(s) => {
            s == wanted || time::compare_instants(s, wanted) == Some(Ordering::Equal)
        }
        Value::Number(n) => number_text_equal(n, wanted),
        Value::Bool(b) => wanted == if *b { "true" } else { "false" },
        _ => false,
    }
}

/// Orders a stored value against a query value, or `None` if they are not comparable.
fn compare(leaf: &Value, wanted: &str) -> Option<Ordering> {
    match leaf {
        Value::String(s) => Some(compare_strings(s, wanted)),
        Value::Number(n) => n.as_f64()?.partial_cmp(&wanted.trim().parse::<f64>().ok()?),
        _ => None,
    }
}

/// Instants if both are date-times, numbers if both are numeric, else code points.
fn compare_strings(a: &str, b: &str) -> Ordering {
    if let Some(ordering) = time::compare_instants(a, b) {
        return ordering;
    }
    if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        if let Some(ordering) = x.partial_cmp(&y) {
            return ordering;
        }
    }
    a.cmp(b)
}

fn type_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => compare_strings(x, y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// Missing values sort last whatever the direction.
fn compare_for_sort(a: Option<&Value>, b: Option<&Value>, descending: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let ordering = compare_values(x, y);
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(raw: &str) -> Query {
        Query::parse(raw, &QueryLimits::default()).unwrap()
    }

    fn err(raw: &str) -> QueryError {
        Query::parse(raw, &QueryLimits::default()).unwrap_err()
    }

    fn items() -> Vec<Value> {
        vec![
            json!({"id": "a", "href": "h/a", "name": "Alpha fibre", "lifecycleStatus": "Active",
                   "lastUpdate": "2024-01-01T10:00:00.000Z", "rank": 3, "isBundle": false,
                   "validFor": {"startDateTime": "2024-01-01T00:00:00Z"},
                   "category": [{"id": "c1", "name": "Internet"}, {"id": "c2", "name": "TV"}],
                   "tags": ["x", "y"], "version": "9"}),
            json!({"id": "b", "href": "h/b", "name": "Beta mobile", "lifecycleStatus": "Launched",
                   "lastUpdate": "2024-01-02T10:00:00.000Z", "rank": 1, "isBundle": true,
                   "validFor": {"startDateTime": "2024-02-01T00:00:00+01:00"},
                   "category": [{"id": "c3", "name": "Mobile"}], "version": "10"}),
            json!({"id": "c", "href": "h/c", "name": "Gamma", "lifecycleStatus": "Retired",
                   "lastUpdate": "2024-01-03T10:00:00.000Z", "rank": 2.5, "version": "11"}),
        ]
    }

    fn ids(raw: &str) -> Vec<String> {
        let (page, _) = q(raw).apply(items());
        page.iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn exact_match_or_and_nested() {
        assert_eq!(ids("lifecycleStatus=Active"), ["a"]);
        assert_eq!(ids("lifecycleStatus=Active,Retired"), ["a", "c"]);
        assert_eq!(ids("lifecycleStatus=Active,Retired&rank=2.5"), ["c"]);
        assert_eq!(ids("validFor.startDateTime=2024-01-01T00:00:00Z"), ["a"]);
        assert_eq!(ids("category.name=Mobile"), ["b"]);
        assert_eq!(ids("category.id=c2,c3"), ["a", "b"]);
        assert_eq!(ids("tags=y"), ["a"]);
        assert_eq!(ids("isBundle=true"), ["b"]);
        assert_eq!(ids("rank=3"), ["a"]);
        assert_eq!(ids("rank=3.0"), ["a"]);
        assert_eq!(ids("name=alpha"), Vec::<String>::new());
        assert_eq!(ids("missing=1"), Vec::<String>::new());
        assert_eq!(ids("id=b"), ["b"]);
        assert_eq!(ids("name=Beta%20mobile"), ["b"]);
        assert_eq!(ids("name=Beta+mobile"), ["b"]);
    }

    #[test]
    fn date_times_match_as_instants() {
        // the same instant written with an offset, and the CTK's echo of our own value
        assert_eq!(ids("validFor.startDateTime=2024-01-31T23:00:00Z"), ["b"]);
        assert_eq!(ids("lastUpdate=2024-01-02T10:00:00.000Z"), ["b"]);
        assert_eq!(ids("lastUpdate=2024-01-02T10:00:00Z"), ["b"]);
        // an unencoded `+01:00` arrives as ` 01:00`
        assert_eq!(
            ids("validFor.startDateTime=2024-02-01T00:00:00+01:00"),
            ["b"]
        );
        assert_eq!(
            ids("validFor.startDateTime.gte=2024-01-15T00:00:00+01:00"),
            ["b"]
        );
    }

    #[test]
    fn comparison_operators() {
        assert_eq!(ids("lastUpdate.gt=2024-01-01T10:00:00.000Z"), ["b", "c"]);
        assert_eq!(ids("lastUpdate.gte=2024-01-02T10:00:00Z"), ["b", "c"]);
        assert_eq!(ids("lastUpdate.lt=2024-01-02"), ["a"]);
        assert_eq!(ids("lastUpdate.lte=2024-01-02T10:00:00Z"), ["a", "b"]);
        assert_eq!(ids("lastUpdate.eq=2024-01-03T11:00:00%2B01:00"), ["c"]);
        assert_eq!(ids("rank.gt=1&rank.lt=3"), ["c"]);
        assert_eq!(ids("rank.gte=abc"), Vec::<String>::new());
        assert_eq!(ids("name.gt=B"), ["b", "c"]);
        // numeric strings compare as numbers
        assert_eq!(ids("version.gt=9"), ["b", "c"]);
        // TMF630 operator forms
        assert_eq!(ids("rank>=2.5"), ["a", "c"]);
        assert_eq!(ids("rank<=2.5"), ["b", "c"]);
        assert_eq!(ids("rank%3E2.5"), ["a"]);
        assert_eq!(ids("rank%3C2"), ["b"]);
    }

    #[test]
    fn regex_operator() {
        assert_eq!(ids("name.regex=^(Alpha|Gamma)"), ["a", "c"]);
        assert_eq!(ids("name.regex=(?i)MOBILE"), ["b"]);
        assert_eq!(ids("category.name.regex=^T"), ["a"]);
        assert_eq!(ids("rank.regex=^2%5C.5$"), ["c"]);
        // a comma belongs to the pattern, not a list of values
        assert_eq!(ids("name.regex=^[A-Z][a-z]{1,4}$"), ["c"]);
    }

    #[test]
    fn sorting() {
        assert_eq!(ids("sort=rank"), ["b", "c", "a"]);
        assert_eq!(ids("sort=-rank"), ["a", "c", "b"]);
        assert_eq!(ids("sort=-lastUpdate"), ["c", "b", "a"]);
        assert_eq!(ids("sort=isBundle,-name"), ["a", "b", "c"]);
        assert_eq!(ids("sort=version"), ["a", "b", "c"]);
        // missing values last in both directions
        assert_eq!(ids("sort=validFor.startDateTime"), ["a", "b", "c"]);
        assert_eq!(ids("sort=-validFor.startDateTime"), ["b", "a", "c"]);
        assert_eq!(ids("sort=%2Bname"), ["a", "b", "c"]);
        assert_eq!(ids("sort=-category.name"), ["b", "a", "c"]);
    }

    #[test]
    fn paging() {
        let (page, total) = q("offset=1&limit=1").apply(items());
        assert_eq!((page.len(), total), (1, 3));
        assert_eq!(page[0]["id"], "b");
        let (page, total) = q("offset=5").apply(items());
        assert_eq!((page.len(), total), (0, 3));
        let (page, total) = q("limit=0").apply(items());
        assert_eq!((page.len(), total), (0, 3));
        let (page, total) = q("lifecycleStatus=Retired&limit=10").apply(items());
        assert_eq!((page.len(), total), (1, 1));
        assert_eq!(q("").limit, 1000);
        assert_eq!(q("limit=1000").limit, 1000);
        assert_eq!(q("offset=2&limit=5").page(4), 2..4);
    }

    #[test]
    fn fields_projection() {
        let (page, _) = q("fields=name,validFor.startDateTime,category.name&id=a").apply(items());
        assert_eq!(
            page[0],
            json!({"id": "a", "href": "h/a", "name": "Alpha fibre",
                   "validFor": {"startDateTime": "2024-01-01T00:00:00Z"},
                   "category": [{"name": "Internet"}, {"name": "TV"}]})
        );
        let (page, _) = q("fields=id").apply(items());
        assert_eq!(page[2], json!({"id": "c", "href": "h/c"}));
        let (page, _) = q("fields=category,category.name&id=b").apply(items());
        assert_eq!(page[0]["category"], json!([{"id": "c3", "name": "Mobile"}]));
        let (page, _) = q("fields=lastUpdate&fields=rank&id=c").apply(items());
        assert_eq!(
            page[0],
            json!({"id": "c", "href": "h/c", "lastUpdate": "2024-01-03T10:00:00.000Z", "rank": 2.5})
        );
    }

    #[test]
    fn malformed_queries_are_typed_errors() {
        assert_eq!(
            err("limit=1001"),
            QueryError::LimitTooLarge {
                limit: "1001".into(),
                max: 1000
            }
        );
        assert!(matches!(
            err("limit=99999999999999999999999"),
            QueryError::LimitTooLarge { .. }
        ));
        assert!(matches!(err("limit=-1"), QueryError::NotACount { .. }));
        assert!(matches!(err("limit=ten"), QueryError::NotACount { .. }));
        assert!(matches!(err("offset="), QueryError::NotACount { .. }));
        assert!(matches!(err("offset=1.5"), QueryError::NotACount { .. }));
        assert_eq!(
            err("limit=1&limit=2"),
            QueryError::Duplicate("limit".into())
        );
        assert_eq!(err("sort=a&sort=b"), QueryError::Duplicate("sort".into()));
        assert_eq!(err("sort="), QueryError::EmptyValue("sort".into()));
        assert_eq!(err("fields=,"), QueryError::EmptyValue("fields".into()));
        assert_eq!(err("sort=a..b"), QueryError::BadPath("a..b".into()));
        assert_eq!(err("fields=na%20me"), QueryError::BadPath("na me".into()));
        assert_eq!(err("name="), QueryError::EmptyValue("name".into()));
        assert_eq!(err(".gt=3"), QueryError::BadPath("".into()));
        assert_eq!(err("a>b=c"), QueryError::BadPath("a>b".into()));
        assert!(matches!(
            err("name.regex=(unclosed"),
            QueryError::BadRegex { .. }
        ));
        assert!(matches!(
            err("name.regex=a{100000}{100000}"),
            QueryError::BadRegex { .. }
        ));
        let long = format!("name.regex={}", "a".repeat(300));
        assert!(matches!(err(&long), QueryError::BadRegex { .. }));
        assert_eq!(
            err("expand=category"),
            QueryError::Unsupported("expand".into())
        );
        let many: Vec<String> = (0..40).map(|i| format!("a{i}=1")).collect();
        assert_eq!(err(&many.join("&")), QueryError::TooManyFilters(32));
        let deep = vec!["a"; 20].join(".");
        assert!(matches!(err(&format!("{deep}=1")), QueryError::BadPath(_)));
        let values = vec!["v"; 70].join(",");
        assert!(matches!(
            err(&format!("a={values}")),
            QueryError::TooManyValues { .. }
        ));
    }

    #[test]
    fn single_entity_reads_take_only_fields() {
        let limits = QueryLimits::default();
        let sel = Query::parse_selection("fields=name", &limits).unwrap();
        assert_eq!(
            sel.project(&items()[0]),
            json!({"id": "a", "href": "h/a", "name": "Alpha fibre"})
        );
        assert!(Query::parse_selection("", &limits)
            .unwrap()
            .fields
            .is_none());
        assert_eq!(
            Query::parse_selection("fields=name&version=2", &limits).unwrap_err(),
            QueryError::NotForEntity("version".into())
        );
        assert!(Query::parse_selection("fields=a..b", &limits).is_err());
    }

    #[test]
    fn errors_map_to_tmf_errors() {
        let e: TmfError = err("limit=5000").into();
        assert_eq!((e.http_status(), e.code.as_str()), (400, "LimitTooLarge"));
        let e: TmfError = err("sort=").into();
        assert_eq!((e.http_status(), e.code.as_str()), (400, "InvalidQuery"));
    }

    #[test]
    fn filter_sets_for_notifications() {
        let limits = QueryLimits::default();
        let event = json!({"eventType": "ProductOfferingCreateEvent",
                           "event": {"productOffering": {"name": "x", "lifecycleStatus": "Launched"}}});
        for (raw, expected) in [
            ("", true),
            ("eventType=ProductOfferingCreateEvent", true),
            ("eventType = ProductOfferingCreateEvent", true),
            ("?eventType=ProductOfferingDeleteEvent,ProductOfferingCreateEvent", true),
            ("eventType=ProductOfferingDeleteEvent", false),
            ("eventType=ProductOfferingCreateEvent&event.productOffering.lifecycleStatus=Launched", true),
            ("event.productOffering.name=y", false),
            ("event.productOffering.name.regex=^x$", true),
        ] {
            let set = FilterSet::parse(raw, &limits).unwrap();
            assert_eq!(set.matches(&event), expected, "{raw}");
        }
        assert_eq!(
            FilterSet::parse("fields=name", &limits).unwrap_err(),
            QueryError::NotAFilter("fields".into())
        );
        assert!(FilterSet::parse("eventType=", &limits).is_err());
    }
}
