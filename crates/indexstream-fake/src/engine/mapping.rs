//! Index mappings: explicit field types, dynamic mapping of new fields, multi-fields, and the
//! conversion of a document's JSON into typed, indexed field values.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::date::DateFormat;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Keyword,
    Ip,
    Long,
    Integer,
    Short,
    Byte,
    Double,
    Float,
    HalfFloat,
    UnsignedLong,
    Boolean,
    Date,
    DateNanos,
}

impl FieldType {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "text" | "match_only_text" => FieldType::Text,
            "keyword" | "constant_keyword" | "wildcard" => FieldType::Keyword,
            "ip" => FieldType::Ip,
            "long" => FieldType::Long,
            "integer" => FieldType::Integer,
            "short" => FieldType::Short,
            "byte" => FieldType::Byte,
            "double" | "scaled_float" => FieldType::Double,
            "float" => FieldType::Float,
            "half_float" => FieldType::HalfFloat,
            "unsigned_long" => FieldType::UnsignedLong,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "date_nanos" => FieldType::DateNanos,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Keyword => "keyword",
            FieldType::Ip => "ip",
            FieldType::Long => "long",
            FieldType::Integer => "integer",
            FieldType::Short => "short",
            FieldType::Byte => "byte",
            FieldType::Double => "double",
            FieldType::Float => "float",
            FieldType::HalfFloat => "half_float",
            FieldType::UnsignedLong => "unsigned_long",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::DateNanos => "date_nanos",
        }
    }

    pub fn is_string(self) -> bool {
        matches!(self, FieldType::Text | FieldType::Keyword | FieldType::Ip)
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            FieldType::Double | FieldType::Float | FieldType::HalfFloat
        )
    }
}

/// One indexed value of a field, typed by the field's mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldVal {
    /// text, keyword and ip values.
    Str(Arc<str>),
    /// long, integer, short, byte, boolean (0/1), date (epoch millis), date_nanos (epoch nanos).
    Int(i64),
    UInt(u64),
    /// double, float and half_float, already rounded to the field's precision.
    Float(f64),
}

pub type FieldId = u32;

#[derive(Debug, Clone)]
pub struct FieldInfo {
    pub path: String,
    pub ty: FieldType,
    pub format: Option<DateFormat>,
    pub ignore_above: Option<usize>,
    /// `ignore_malformed: true`: a value that does not parse leaves the field unindexed
    /// (invisible to `exists`, ranges and sorts) instead of rejecting the document.
    pub ignore_malformed: bool,
}

impl FieldInfo {
    /// The field's date format (the type's default when the mapping gives none).
    pub fn date_format(&self) -> &DateFormat {
        static DATE: std::sync::OnceLock<DateFormat> = std::sync::OnceLock::new();
        static NANOS: std::sync::OnceLock<DateFormat> = std::sync::OnceLock::new();
        match (&self.format, self.ty) {
            (Some(f), _) => f,
            (None, FieldType::DateNanos) => NANOS.get_or_init(DateFormat::default_date_nanos),
            (None, _) => DATE.get_or_init(DateFormat::default_date),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dynamic {
    True,
    False,
    Strict,
}

#[derive(Debug, Clone)]
struct Leaf {
    /// Set once the field is registered, so indexing a value needs no path lookup.
    id: Option<FieldId>,
    ty: FieldType,
    /// Parameters other than `type` and `fields`, echoed back by GET _mapping.
    params: Map<String, Value>,
    fields: BTreeMap<String, Leaf>,
}

#[derive(Debug, Clone, Default)]
struct Object {
    properties: BTreeMap<String, Node>,
    dynamic: Option<Dynamic>,
    enabled: bool,
    nested: bool,
}

#[derive(Debug, Clone)]
enum Node {
    Object(Object),
    Leaf(Leaf),
}

/// The mappings of one index.
#[derive(Debug, Clone)]
pub struct Mappings {
    root: Object,
    date_detection: bool,
    meta: Option<Value>,
    fields: Vec<FieldInfo>,
    by_path: HashMap<String, FieldId>,
}

impl Default for Mappings {
    fn default() -> Self {
        Mappings {
            root: Object {
                enabled: true,
                ..Object::default()
            },
            date_detection: true,
            meta: None,
            fields: Vec::new(),
            by_path: HashMap::new(),
        }
    }
}

fn round_half(v: f64) -> f64 {
    let v = v as f32;
    if !v.is_finite() || v == 0.0 {
        return v as f64;
    }
    let a = v.abs();
    if a >= 65520.0 {
        return f64::INFINITY.copysign(v as f64);
    }
    let quantum = if a < 6.103_515_6e-5 {
        2f32.powi(-24)
    } else {
        let exp = ((a.to_bits() >> 23) & 0xff) as i32 - 127;
        2f32.powi(exp - 10)
    };
    ((a / quantum).round_ties_even() * quantum).copysign(v) as f64
}

fn preview(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Mappings {
    pub fn from_json(body: &Value) -> ApiResult<Self> {
        let mut m = Mappings::default();
        m.merge_json(body)?;
        Ok(m)
    }

    pub fn field(&self, id: FieldId) -> &FieldInfo {
        &self.fields[id as usize]
    }

    pub fn field_id(&self, path: &str) -> Option<FieldId> {
        self.by_path.get(path).copied()
    }

    /// Every field at or below `path` (for `exists` on an object).
    pub fn fields_under(&self, path: &str) -> Vec<FieldId> {
        let prefix = format!("{path}.");
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.path == path || f.path.starts_with(&prefix))
            .map(|(i, _)| i as FieldId)
            .collect()
    }

    /// Merges a mappings body (`{"properties": ..., "dynamic": ...}`) into these mappings.
    pub fn merge_json(&mut self, body: &Value) -> ApiResult<()> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::mapper_parsing("Root mapping definition must be an object"))?;
        let mut root = self.root.clone();
        for (key, value) in obj {
            match key.as_str() {
                "properties" => merge_properties(&mut root, value, "")?,
                "dynamic" => root.dynamic = Some(parse_dynamic(value)?),
                "date_detection" => {
                    self.date_detection = value.as_bool().unwrap_or(value.as_str() == Some("true"))
                }
                "_meta" => self.meta = Some(value.clone()),
                "_source"
                | "_routing"
                | "numeric_detection"
                | "dynamic_templates"
                | "dynamic_date_formats"
                | "enabled" => {}
                "_doc" if value.is_object() => return self.merge_json(value),
                other => {
                    return Err(ApiError::mapper_parsing(format!(
                        "Root mapping definition has unsupported parameters:  [{other} : {value}]"
                    )));
                }
            }
        }
        self.root = root;
        self.reindex_fields();
        Ok(())
    }

    fn reindex_fields(&mut self) {
        fn register(
            fields: &mut Vec<FieldInfo>,
            by_path: &mut HashMap<String, FieldId>,
            path: String,
            leaf: &mut Leaf,
        ) {
            let id = match by_path.get(&path) {
                Some(id) => *id,
                None => {
                    let format = leaf
                        .params
                        .get("format")
                        .and_then(|f| f.as_str())
                        .and_then(|f| DateFormat::parse(f).ok());
                    let ignore_above = leaf
                        .params
                        .get("ignore_above")
                        .and_then(|v| v.as_u64())
                        .map(|v| v as usize);
                    let ignore_malformed =
                        matches!(leaf.params.get("ignore_malformed"), Some(Value::Bool(true)))
                            || leaf.params.get("ignore_malformed").and_then(|v| v.as_str())
                                == Some("true");
                    let id = fields.len() as FieldId;
                    by_path.insert(path.clone(), id);
                    fields.push(FieldInfo {
                        path: path.clone(),
                        ty: leaf.ty,
                        format,
                        ignore_above,
                        ignore_malformed,
                    });
                    id
                }
            };
            leaf.id = Some(id);
            for (sub, sub_leaf) in leaf.fields.iter_mut() {
                register(fields, by_path, format!("{path}.{sub}"), sub_leaf);
            }
        }
        fn walk(
            fields: &mut Vec<FieldInfo>,
            by_path: &mut HashMap<String, FieldId>,
            obj: &mut Object,
            prefix: &str,
        ) {
            for (name, node) in obj.properties.iter_mut() {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                match node {
                    Node::Object(child) => walk(fields, by_path, child, &path),
                    Node::Leaf(leaf) => register(fields, by_path, path, leaf),
                }
            }
        }
        walk(&mut self.fields, &mut self.by_path, &mut self.root, "");
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        if let Some(d) = self.root.dynamic {
            out.insert("dynamic".into(), dynamic_json(d));
        }
        if let Some(meta) = &self.meta {
            out.insert("_meta".into(), meta.clone());
        }
        if !self.root.properties.is_empty() {
            out.insert("properties".into(), properties_json(&self.root.properties));
        }
        Value::Object(out)
    }

    /// Parses a document into typed field values, adding dynamic mappings for new fields.
    pub fn index_document(
        &mut self,
        id: &str,
        source: &Value,
    ) -> ApiResult<Vec<(FieldId, FieldVal)>> {
        let obj = source
            .as_object()
            .ok_or_else(|| ApiError::mapper_parsing("failed to parse, document is empty"))?;
        let mut out = Vec::new();
        let mut changed = false;
        let mut root = std::mem::take(&mut self.root);
        let result = self.walk_object(
            &mut root,
            Dynamic::True,
            "",
            obj,
            id,
            &mut out,
            &mut changed,
        );
        self.root = root;
        if changed {
            self.reindex_fields();
            // Values of fields created in this document were parsed before they had ids.
            out.clear();
            let mut root = std::mem::take(&mut self.root);
            let mut unchanged = false;
            let again = self.walk_object(
                &mut root,
                Dynamic::True,
                "",
                obj,
                id,
                &mut out,
                &mut unchanged,
            );
            self.root = root;
            again?;
        }
        result?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_object(
        &self,
        obj: &mut Object,
        inherited: Dynamic,
        prefix: &str,
        doc: &Map<String, Value>,
        id: &str,
        out: &mut Vec<(FieldId, FieldVal)>,
        changed: &mut bool,
    ) -> ApiResult<()> {
        let dynamic = obj.dynamic.unwrap_or(inherited);
        for (key, value) in doc {
            if key.is_empty() {
                return Err(ApiError::mapper_parsing(
                    "field name cannot be an empty string",
                ));
            }
            // A dotted key is the same as nested objects.
            if let Some((head, rest)) = key.split_once('.') {
                let mut inner = Map::new();
                inner.insert(rest.to_string(), value.clone());
                let mut wrapper = Map::new();
                wrapper.insert(head.to_string(), Value::Object(inner));
                self.walk_object(obj, dynamic, prefix, &wrapper, id, out, changed)?;
                continue;
            }
            let path = if prefix.is_empty() {
                std::borrow::Cow::Borrowed(key.as_str())
            } else {
                std::borrow::Cow::Owned(format!("{prefix}.{key}"))
            };
            self.walk_value(obj, dynamic, &path, key, value, id, out, changed)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_value(
        &self,
        obj: &mut Object,
        dynamic: Dynamic,
        path: &str,
        key: &str,
        value: &Value,
        id: &str,
        out: &mut Vec<(FieldId, FieldVal)>,
        changed: &mut bool,
    ) -> ApiResult<()> {
        // A disabled object is not parsed at all: any value is kept in `_source` only, as
        // OpenSearch keeps it (arrays and plain values too).
        if matches!(obj.properties.get(key), Some(Node::Object(o)) if !o.enabled) {
            return Ok(());
        }
        if let Value::Array(items) = value {
            for item in items {
                self.walk_value(obj, dynamic, path, key, item, id, out, changed)?;
            }
            return Ok(());
        }
        if value.is_null() {
            return Ok(());
        }
        if !obj.properties.contains_key(key) {
            match dynamic {
                Dynamic::False => return Ok(()),
                Dynamic::Strict => {
                    let within = path.rsplit_once('.').map(|(p, _)| p).unwrap_or("_doc");
                    return Err(ApiError::new(400, "strict_dynamic_mapping_exception", format!("mapping set to strict, dynamic introduction of [{key}] within [{within}] is not allowed")));
                }
                Dynamic::True => {
                    let node = match value {
                        Value::Object(_) => Node::Object(Object {
                            enabled: true,
                            ..Object::default()
                        }),
                        other => Node::Leaf(self.dynamic_leaf(other)),
                    };
                    obj.properties.insert(key.to_string(), node);
                    *changed = true;
                }
            }
        }
        let Some(node) = obj.properties.get_mut(key) else {
            return Ok(());
        };
        match node {
            Node::Object(child) => match value {
                Value::Object(map) => {
                    if child.enabled {
                        self.walk_object(child, dynamic, path, map, id, out, changed)?;
                    }
                    Ok(())
                }
                _ => Err(ApiError::mapper_parsing(format!("object mapping for [{path}] tried to parse field [{key}] as object, but found a concrete value"))),
            },
            Node::Leaf(leaf) => {
                if *changed {
                    return Ok(());
                }
                self.index_leaf(path, leaf, value, id, out)
            }
        }
    }

    fn index_leaf(
        &self,
        path: &str,
        leaf: &Leaf,
        value: &Value,
        id: &str,
        out: &mut Vec<(FieldId, FieldVal)>,
    ) -> ApiResult<()> {
        let Some(fid) = leaf.id else {
            return Ok(());
        };
        let info = self.field(fid);
        let converted = match convert(info, value) {
            Err(_) if info.ignore_malformed => Ok(None),
            other => other,
        };
        if let Some(v) = converted.map_err(|why| {
            let mut reason = format!("failed to parse field [{path}] of type [{}] in document with id '{id}'. Preview of field's value: '{}'", info.ty.name(), preview(value));
            if !why.is_empty() {
                reason = format!("{reason}: {why}");
            }
            ApiError::mapper_parsing(reason)
        })? {
            out.push((fid, v));
        }
        for (sub, sub_leaf) in &leaf.fields {
            if let Some(sub_id) = sub_leaf.id {
                if let Some(v) = convert(self.field(sub_id), value).ok().flatten() {
                    out.push((sub_id, v));
                }
            } else {
                self.index_leaf(&format!("{path}.{sub}"), sub_leaf, value, id, out)?;
            }
        }
        Ok(())
    }

    fn dynamic_leaf(&self, value: &Value) -> Leaf {
        let params = Map::new();
        let mut fields = BTreeMap::new();
        let ty = match value {
            Value::Bool(_) => FieldType::Boolean,
            Value::Number(n) if n.is_f64() => FieldType::Float,
            Value::Number(_) => FieldType::Long,
            Value::String(s) if self.date_detection && looks_like_date(s) => FieldType::Date,
            _ => {
                let mut kw = Map::new();
                kw.insert("ignore_above".into(), json!(256));
                fields.insert(
                    "keyword".to_string(),
                    Leaf {
                        id: None,
                        ty: FieldType::Keyword,
                        params: kw,
                        fields: BTreeMap::new(),
                    },
                );
                FieldType::Text
            }
        };
        Leaf {
            id: None,
            ty,
            params,
            fields,
        }
    }
}

fn looks_like_date(s: &str) -> bool {
    static FORMATS: std::sync::OnceLock<DateFormat> = std::sync::OnceLock::new();
    let f = FORMATS
        .get_or_init(|| DateFormat::parse("strict_date_optional_time").expect("built-in format"));
    s.len() >= 8 && s.as_bytes()[0].is_ascii_digit() && f.parse_str(s, 0).is_some()
}

/// Converts one JSON value for a field; `Ok(None)` means "not indexed" (e.g. over `ignore_above`).
pub fn convert(info: &FieldInfo, value: &Value) -> Result<Option<FieldVal>, String> {
    let bad = || String::new();
    Ok(Some(match info.ty {
        FieldType::Text | FieldType::Keyword | FieldType::Ip => {
            let s: Arc<str> = match value {
                Value::String(s) => Arc::from(s.as_str()),
                Value::Number(n) => Arc::from(n.to_string().as_str()),
                Value::Bool(b) => Arc::from(if *b { "true" } else { "false" }),
                _ => return Err(bad()),
            };
            if info.ignore_above.is_some_and(|max| s.chars().count() > max) {
                return Ok(None);
            }
            FieldVal::Str(s)
        }
        FieldType::Long | FieldType::Integer | FieldType::Short | FieldType::Byte => {
            let n: i64 = match value {
                Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => i,
                    (None, Some(f))
                        if n.as_u64().is_none() && f.is_finite() && f.abs() < 9.2e18 =>
                    {
                        f.trunc() as i64
                    }
                    _ => return Err(format!("Value [{n}] is out of range for a long")),
                },
                Value::String(s) => match s.parse::<i64>() {
                    Ok(i) => i,
                    Err(_) => match s.parse::<f64>() {
                        Ok(f) if f.is_finite() && f.abs() < 9.2e18 => f.trunc() as i64,
                        _ => return Err(format!("For input string: \"{s}\"")),
                    },
                },
                _ => return Err(bad()),
            };
            let (lo, hi, name) = match info.ty {
                FieldType::Integer => (i32::MIN as i64, i32::MAX as i64, "integer"),
                FieldType::Short => (i16::MIN as i64, i16::MAX as i64, "short"),
                FieldType::Byte => (i8::MIN as i64, i8::MAX as i64, "byte"),
                _ => (i64::MIN, i64::MAX, "long"),
            };
            if n < lo || n > hi {
                return Err(format!("Value [{n}] is out of range for a {name}"));
            }
            FieldVal::Int(n)
        }
        FieldType::UnsignedLong => match value {
            Value::Number(n) => FieldVal::UInt(
                n.as_u64()
                    .ok_or_else(|| format!("Value [{n}] is out of range for an unsigned long"))?,
            ),
            Value::String(s) => FieldVal::UInt(
                s.parse()
                    .map_err(|_| format!("For input string: \"{s}\""))?,
            ),
            _ => return Err(bad()),
        },
        FieldType::Double | FieldType::Float | FieldType::HalfFloat => {
            let f = match value {
                Value::Number(n) => n.as_f64().ok_or_else(bad)?,
                Value::String(s) => s
                    .parse()
                    .map_err(|_| format!("For input string: \"{s}\""))?,
                _ => return Err(bad()),
            };
            if !f.is_finite() {
                return Err(format!(
                    "[{}] supports only finite values, but got [{f}]",
                    info.ty.name()
                ));
            }
            FieldVal::Float(round_to(info.ty, f))
        }
        FieldType::Boolean => FieldVal::Int(match value {
            Value::Bool(b) => *b as i64,
            Value::String(s) if s == "true" => 1,
            Value::String(s) if s == "false" || s.is_empty() => 0,
            _ => return Err(bad()),
        }),
        FieldType::Date | FieldType::DateNanos => {
            let f = info.date_format();
            let ts = f.parse_value(value).ok_or_else(|| {
                format!(
                    "failed to parse date field [{}] with format [{}]",
                    preview(value),
                    f.text()
                )
            })?;
            if info.ty == FieldType::DateNanos {
                FieldVal::Int(ts.epoch_nanos().ok_or_else(|| {
                    "date is before the epoch or after 2262, which date_nanos cannot hold"
                        .to_string()
                })?)
            } else {
                FieldVal::Int(ts.millis())
            }
        }
    }))
}

/// Rounds a number to the precision the field type stores.
pub fn round_to(ty: FieldType, f: f64) -> f64 {
    match ty {
        FieldType::Float => f as f32 as f64,
        FieldType::HalfFloat => round_half(f),
        _ => f,
    }
}

fn parse_dynamic(v: &Value) -> ApiResult<Dynamic> {
    match v {
        Value::Bool(true) => Ok(Dynamic::True),
        Value::Bool(false) => Ok(Dynamic::False),
        Value::String(s) if s == "true" => Ok(Dynamic::True),
        Value::String(s) if s == "false" => Ok(Dynamic::False),
        Value::String(s) if s == "strict" => Ok(Dynamic::Strict),
        other => Err(ApiError::mapper_parsing(format!(
            "Unable to parse dynamic value [{other}]"
        ))),
    }
}

fn dynamic_json(d: Dynamic) -> Value {
    match d {
        Dynamic::True => json!("true"),
        Dynamic::False => json!("false"),
        Dynamic::Strict => json!("strict"),
    }
}

fn parse_leaf(name: &str, ty_name: &str, def: &Map<String, Value>) -> ApiResult<Leaf> {
    let ty = FieldType::parse(ty_name).ok_or_else(|| {
        ApiError::mapper_parsing(format!(
            "No handler for type [{ty_name}] declared on field [{name}]"
        ))
    })?;
    let mut params = Map::new();
    let mut fields = BTreeMap::new();
    for (k, v) in def {
        match k.as_str() {
            "type" => {}
            "fields" => {
                for (sub, subdef) in v.as_object().ok_or_else(|| {
                    ApiError::mapper_parsing(format!(
                        "Expected map for property [fields] on field [{name}]"
                    ))
                })? {
                    let subdef = subdef.as_object().ok_or_else(|| {
                        ApiError::mapper_parsing(format!(
                            "Expected map for property [fields] on field [{sub}]"
                        ))
                    })?;
                    let sub_ty = subdef
                        .get("type")
                        .and_then(|t| t.as_str())
                        .unwrap_or("object");
                    fields.insert(sub.clone(), parse_leaf(sub, sub_ty, subdef)?);
                }
            }
            "format" if matches!(ty, FieldType::Date | FieldType::DateNanos) => {
                let f = v.as_str().unwrap_or_default();
                DateFormat::parse(f).map_err(|e| {
                    ApiError::mapper_parsing(format!(
                        "Error parsing [format] on field [{name}]: {e}"
                    ))
                })?;
                params.insert(k.clone(), v.clone());
            }
            _ => {
                params.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Leaf {
        id: None,
        ty,
        params,
        fields,
    })
}

fn merge_properties(obj: &mut Object, props: &Value, prefix: &str) -> ApiResult<()> {
    let props = props
        .as_object()
        .ok_or_else(|| ApiError::mapper_parsing("Expected map for property [properties]"))?;
    for (name, def) in props {
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let def = def.as_object().ok_or_else(|| ApiError::mapper_parsing(format!("Expected map for property [fields] on field [{name}] but got a class java.lang.String")))?;
        let ty_name = def.get("type").and_then(|t| t.as_str());
        let is_object = matches!(ty_name, None | Some("object") | Some("nested"));
        if is_object {
            let existing = obj.properties.entry(name.clone()).or_insert_with(|| {
                Node::Object(Object {
                    enabled: true,
                    ..Object::default()
                })
            });
            let Node::Object(child) = existing else {
                return Err(ApiError::illegal_argument(format!(
                    "can't merge a non object mapping [{full}] with an object mapping"
                )));
            };
            child.nested = ty_name == Some("nested");
            if let Some(d) = def.get("dynamic") {
                child.dynamic = Some(parse_dynamic(d)?);
            }
            if let Some(e) = def.get("enabled") {
                child.enabled = e.as_bool().unwrap_or(true);
            }
            if let Some(p) = def.get("properties") {
                merge_properties(child, p, &full)?;
            }
        } else {
            let leaf = parse_leaf(name, ty_name.unwrap_or_default(), def)?;
            match obj.properties.get(name) {
                Some(Node::Leaf(old)) if old.ty != leaf.ty => {
                    return Err(ApiError::illegal_argument(format!(
                        "mapper [{full}] cannot be changed from type [{}] to [{}]",
                        old.ty.name(),
                        leaf.ty.name()
                    )));
                }
                Some(Node::Object(_)) => {
                    return Err(ApiError::illegal_argument(format!(
                        "can't merge a non object mapping [{full}] with an object mapping"
                    )));
                }
                _ => {}
            }
            obj.properties.insert(name.clone(), Node::Leaf(leaf));
        }
    }
    Ok(())
}

fn leaf_json(leaf: &Leaf) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(leaf.ty.name()));
    for (k, v) in &leaf.params {
        m.insert(k.clone(), v.clone());
    }
    if !leaf.fields.is_empty() {
        let fields: Map<String, Value> = leaf
            .fields
            .iter()
            .map(|(k, l)| (k.clone(), leaf_json(l)))
            .collect();
        m.insert("fields".into(), Value::Object(fields));
    }
    Value::Object(m)
}

fn properties_json(props: &BTreeMap<String, Node>) -> Value {
    let mut out = Map::new();
    for (name, node) in props {
        let v = match node {
            Node::Leaf(leaf) => leaf_json(leaf),
            Node::Object(o) => {
                let mut m = Map::new();
                if o.nested {
                    m.insert("type".into(), json!("nested"));
                }
                if let Some(d) = o.dynamic {
                    m.insert("dynamic".into(), dynamic_json(d));
                }
                if !o.enabled {
                    m.insert("enabled".into(), json!(false));
                }
                if !o.properties.is_empty() {
                    m.insert("properties".into(), properties_json(&o.properties));
                }
                Value::Object(m)
            }
        };
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_mapping_types_new_fields() {
        let mut m = Mappings::default();
        let vals = m.index_document("1", &json!({"n": 1, "f": 1.5, "b": true, "s": "Hello", "t": "2024-01-01T00:00:00Z", "o": {"x": "y"}, "event.ingested": "2024-01-01T00:00:01Z"})).unwrap();
        assert_eq!(m.field(m.field_id("n").unwrap()).ty, FieldType::Long);
        assert_eq!(m.field(m.field_id("f").unwrap()).ty, FieldType::Float);
        assert_eq!(m.field(m.field_id("b").unwrap()).ty, FieldType::Boolean);
        assert_eq!(m.field(m.field_id("s").unwrap()).ty, FieldType::Text);
        assert_eq!(
            m.field(m.field_id("s.keyword").unwrap()).ty,
            FieldType::Keyword
        );
        assert_eq!(m.field(m.field_id("t").unwrap()).ty, FieldType::Date);
        assert_eq!(m.field(m.field_id("o.x").unwrap()).ty, FieldType::Text);
        assert_eq!(
            m.field(m.field_id("event.ingested").unwrap()).ty,
            FieldType::Date
        );
        assert_eq!(vals.len(), 9);
    }

    #[test]
    fn strict_mapping_rejects_new_fields_and_type_changes() {
        let mut m = Mappings::from_json(
            &json!({"dynamic": "strict", "properties": {"a": {"type": "long"}}}),
        )
        .unwrap();
        assert!(m.index_document("1", &json!({"a": 1})).is_ok());
        let e = m.index_document("1", &json!({"b": 1})).unwrap_err();
        assert_eq!(e.kind, "strict_dynamic_mapping_exception");
        let e = m.index_document("1", &json!({"a": "x"})).unwrap_err();
        assert_eq!(e.kind, "mapper_parsing_exception");
        let e = m
            .merge_json(&json!({"properties": {"a": {"type": "keyword"}}}))
            .unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn half_float_rounds_like_lucene() {
        assert_eq!(round_half(184.4), 184.375);
        assert_eq!(round_half(164.4), 164.375);
        assert_eq!(round_half(1.0), 1.0);
    }
}

/// Indexing straight from the JSON text, without building a `serde_json::Value`: the hot path
/// of `_bulk`. It handles documents whose fields are all mapped already; anything else (a new
/// field, a dotted key, a value of the wrong shape) makes it give up, and the caller takes the
/// general path, which also produces the exact error message.
pub mod fast {
    use std::cell::RefCell;
    use std::fmt;

    use serde::de::{
        DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
    };
    use serde_json::Value;

    use super::{convert, FieldId, FieldVal, Leaf, Mappings, Node, Object};

    type Out = RefCell<Vec<(FieldId, FieldVal)>>;

    struct ObjSeed<'a> {
        m: &'a Mappings,
        obj: &'a Object,
        out: &'a Out,
    }

    impl<'de> DeserializeSeed<'de> for ObjSeed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for ObjSeed<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq
                .next_element_seed(ObjSeed {
                    m: self.m,
                    obj: self.obj,
                    out: self.out,
                })?
                .is_some()
            {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if !self.obj.enabled {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                match self.obj.properties.get(key.as_ref()) {
                    Some(Node::Object(child)) => map.next_value_seed(ObjSeed {
                        m: self.m,
                        obj: child,
                        out: self.out,
                    })?,
                    Some(Node::Leaf(leaf)) => map.next_value_seed(LeafSeed {
                        m: self.m,
                        leaf,
                        out: self.out,
                    })?,
                    None => return Err(A::Error::custom("unmapped field")),
                }
            }
            Ok(())
        }
    }

    struct LeafSeed<'a> {
        m: &'a Mappings,
        leaf: &'a Leaf,
        out: &'a Out,
    }

    impl LeafSeed<'_> {
        fn push<E: serde::de::Error>(&self, v: Value) -> Result<(), E> {
            let id = self
                .leaf
                .id
                .ok_or_else(|| E::custom("unregistered field"))?;
            let mut out = self.out.borrow_mut();
            let info = self.m.field(id);
            match convert(info, &v) {
                Ok(Some(val)) => out.push((id, val)),
                Ok(None) => {}
                Err(_) if info.ignore_malformed => {}
                Err(_) => return Err(E::custom("value does not fit the field")),
            }
            for sub in self.leaf.fields.values() {
                let sub_id = sub.id.ok_or_else(|| E::custom("unregistered field"))?;
                if let Ok(Some(val)) = convert(self.m.field(sub_id), &v) {
                    out.push((sub_id, val));
                }
            }
            Ok(())
        }
    }

    impl<'de> DeserializeSeed<'de> for LeafSeed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for LeafSeed<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a value")
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
            self.push(Value::Bool(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
            self.push(Value::from(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
            self.push(Value::from(v))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
            self.push(Value::from(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
            self.push(Value::String(v.to_string()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<(), E> {
            self.push(Value::String(v))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq
                .next_element_seed(LeafSeed {
                    m: self.m,
                    leaf: self.leaf,
                    out: self.out,
                })?
                .is_some()
            {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
            Err(A::Error::custom("object in a leaf field"))
        }
    }

    impl Mappings {
        /// The document's indexed values, or `None` when the general path must handle it.
        pub fn index_source_fast(&self, source: &str) -> Option<Vec<(FieldId, FieldVal)>> {
            let out: Out = RefCell::new(Vec::new());
            let mut de = serde_json::Deserializer::from_str(source);
            let first = source.trim_start().as_bytes().first().copied();
            if first != Some(b'{') {
                return None;
            }
            ObjSeed {
                m: self,
                obj: &self.root,
                out: &out,
            }
            .deserialize(&mut de)
            .ok()?;
            de.end().ok()?;
            Some(out.into_inner())
        }
    }
}
