//! Type descriptions: the fields of requests and replies, in go-micro's [`Value`] tree, and the
//! JSON Schema tools derive from it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::de::DeserializeOwned;
use serde_json::{Map, json};
use serde_reflection::{
    ContainerFormat, Format, FormatHolder, Named, Registry as Formats, Samples, Tracer,
    TracerConfig, VariantFormat,
};

use super::Value;

/// Nested types deeper than this are named only: bounds the tree of a pathological type.
const MAX_DEPTH: usize = 16;

/// Bounds on tracing: rounds that each learn the names of more nested enums, and passes
/// over the type within a round, each learning more of their variants.
const MAX_ROUNDS: usize = 8;
const MAX_PASSES: usize = 256;

/// The request and response of an endpoint, described.
///
/// `#[micro::service]` describes each endpoint's types by tracing their `Deserialize` impls
/// with [serde-reflection](https://docs.rs/serde-reflection): users derive serde's traits and
/// nothing more. The tree says what travels in JSON, after serde's renames:
///
/// | Rust | `type` | `values` |
/// |------|--------|----------|
/// | `bool`, `i32`, `u64`, `f64`, `String`, `char` | `bool`, `int32`, `uint64`, `float64`, `string`, `char` | none |
/// | a struct with named fields | its name | one per field |
/// | `Option<T>`, `Vec<T>`, `[T; 4]`, `HashMap<K, V>` | `*T`, `[]T`, `[4]T`, `map[K]V` | those of `T` / `V` |
/// | a tuple, a tuple struct | `(int32, string)` | one per element, named `0`, `1`, … |
/// | a newtype struct | its content's | its content's |
/// | `()`, a unit struct | `()` | none |
/// | an (externally tagged) enum | `enum Name` | one per variant: `()` for a unit variant, else its content |
///
/// Types whose `Deserialize` needs a self-describing format cannot be traced: internally
/// tagged and untagged enums, `#[serde(flatten)]`, `serde_json::Value`, and impls that
/// reject the placeholder values tracing feeds them (a non-empty string, a non-zero number).
/// They degrade to a named type: `values` is empty and the type is named as written, so
/// tools show the name and accept any JSON for it. A type that refers to itself is expanded
/// once; the inner reference is named only.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Ping { seq: u64 }
///
/// let d = micro::registry::Description::of::<Ping, ()>("Ping", "()");
/// assert_eq!(d.request.values[0].name, "seq");
/// assert_eq!(d.response.type_name, "()");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    /// The request (a subscriber's event).
    pub request: Value,
    /// The response (`()` for a subscriber).
    pub response: Value,
}

impl Description {
    /// Describes `Req` and `Resp`; where a type cannot be traced it is named by `request` or
    /// `response`, the type as written.
    ///
    /// See the [type-level example](Self).
    pub fn of<Req: DeserializeOwned, Resp: DeserializeOwned>(
        request: &str,
        response: &str,
    ) -> Self {
        Self {
            request: Value::of::<Req>(request),
            response: Value::of::<Resp>(response),
        }
    }
}

impl Value {
    /// The description of `T`, traced through its `Deserialize` impl; `T` named `type_name`
    /// with no fields where it cannot be traced (see [`Description`]).
    ///
    /// ```
    /// use micro::registry::Value;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Order { id: String, lines: Vec<Line>, note: Option<String> }
    /// #[derive(serde::Deserialize)]
    /// struct Line { sku: String, qty: u32 }
    ///
    /// let v = Value::of::<Order>("Order");
    /// assert_eq!(v.type_name, "Order");
    /// let lines = &v.values[1];
    /// assert_eq!((lines.name.as_str(), lines.type_name.as_str()), ("lines", "[]Line"));
    /// assert_eq!(lines.values[1].type_name, "uint32");
    /// assert_eq!(v.values[2].type_name, "*string");
    ///
    /// // What tracing cannot describe keeps its name.
    /// assert_eq!(Value::of::<serde_json::Value>("serde_json::Value"), Value::named("serde_json::Value"));
    /// ```
    pub fn of<T: DeserializeOwned>(type_name: &str) -> Self {
        // A hand-written `Deserialize` may panic on the tracer's placeholders: that type is
        // then named only, and registration goes on.
        catch_unwind(AssertUnwindSafe(trace::<T>))
            .ok()
            .flatten()
            .map(|(format, formats)| {
                let mut value = Converter {
                    formats: &formats,
                    stack: Vec::new(),
                }
                .value("", &format);
                value.name.clone_from(&value.type_name);
                value
            })
            .unwrap_or_else(|| Self::named(type_name))
    }

    /// The JSON Schema (draft 2020-12) of the JSON this value describes: what a tool checks
    /// a request against, or offers an AI agent as a tool's input.
    ///
    /// Fields are required unless optional (`*T`); a named type with no known fields
    /// accepts any JSON.
    ///
    /// ```
    /// use micro::registry::Value;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Hello { name: String, times: Option<u8> }
    ///
    /// let schema = Value::of::<Hello>("Hello").json_schema();
    /// assert_eq!(schema["type"], "object");
    /// assert_eq!(schema["properties"]["name"]["type"], "string");
    /// assert_eq!(schema["properties"]["times"]["anyOf"][0]["maximum"], 255);
    /// assert_eq!(schema["required"], serde_json::json!(["name"]));
    /// ```
    pub fn json_schema(&self) -> serde_json::Value {
        schema(&self.type_name, &self.values)
    }
}

fn trace<T: DeserializeOwned>() -> Option<(Format, Formats)> {
    // serde-reflection completes an enum only when told, by name, to go on with it; the
    // names of enums nested in other types come from a failed round.
    let samples = Samples::new();
    let mut enums: Vec<String> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let mut tracer = Tracer::new(TracerConfig::default().is_human_readable(true));
        let mut format = Format::unknown();
        for _ in 0..MAX_PASSES {
            format = tracer.trace_type_once::<T>(&samples).ok()?.0;
            let mut again = false;
            if let Format::TypeName(name) = &format {
                again |= tracer.check_incomplete_enum(name).is_some();
            }
            for name in &enums {
                again |= tracer.check_incomplete_enum(name).is_some();
            }
            if !again {
                break;
            }
        }
        match tracer.registry() {
            Ok(formats) => {
                format.normalize().ok()?;
                return Some((format, formats));
            }
            Err(serde_reflection::Error::MissingVariants(names)) => {
                let new: Vec<String> = names.into_iter().filter(|n| !enums.contains(n)).collect();
                if new.is_empty() {
                    return None;
                }
                enums.extend(new);
            }
            Err(_) => return None,
        }
    }
    None
}

/// Turns serde-reflection's formats into the `Value` tree, following type names.
struct Converter<'a> {
    formats: &'a Formats,
    /// The containers being expanded, outermost first: a name met again is a cycle.
    stack: Vec<&'a str>,
}

impl<'a> Converter<'a> {
    fn value(&mut self, name: &str, format: &'a Format) -> Value {
        let (type_name, values) = self.shape(format);
        Value {
            name: name.to_owned(),
            type_name,
            values,
        }
    }

    fn shape(&mut self, format: &'a Format) -> (String, Vec<Value>) {
        let primitive = |name: &str| (name.to_owned(), Vec::new());
        match format {
            Format::TypeName(name) => self.container(name),
            Format::Unit => primitive("()"),
            Format::Bool => primitive("bool"),
            Format::I8 => primitive("int8"),
            Format::I16 => primitive("int16"),
            Format::I32 => primitive("int32"),
            Format::I64 => primitive("int64"),
            Format::I128 => primitive("int128"),
            Format::U8 => primitive("uint8"),
            Format::U16 => primitive("uint16"),
            Format::U32 => primitive("uint32"),
            Format::U64 => primitive("uint64"),
            Format::U128 => primitive("uint128"),
            Format::F32 => primitive("float32"),
            Format::F64 => primitive("float64"),
            Format::Char => primitive("char"),
            Format::Str => primitive("string"),
            // serde_json writes bytes as an array of numbers.
            Format::Bytes => primitive("[]uint8"),
            Format::Option(inner) => self.wrap("*", inner),
            Format::Seq(inner) => self.wrap("[]", inner),
            Format::TupleArray { content, size } => self.wrap(&format!("[{size}]"), content),
            Format::Map { key, value } => {
                let (key, _) = self.shape(key);
                self.wrap(&format!("map[{key}]"), value)
            }
            Format::Tuple(elements) => self.tuple(elements),
            Format::Variable(_) => primitive("?"),
        }
    }

    fn wrap(&mut self, prefix: &str, inner: &'a Format) -> (String, Vec<Value>) {
        let (type_name, values) = self.shape(inner);
        (format!("{prefix}{type_name}"), values)
    }

    fn tuple(&mut self, elements: &'a [Format]) -> (String, Vec<Value>) {
        let values: Vec<Value> = elements
            .iter()
            .enumerate()
            .map(|(i, f)| self.value(&i.to_string(), f))
            .collect();
        let types: Vec<&str> = values.iter().map(|v| v.type_name.as_str()).collect();
        (format!("({})", types.join(", ")), values)
    }

    fn container(&mut self, name: &'a str) -> (String, Vec<Value>) {
        let named = || (name.to_owned(), Vec::new());
        if self.stack.contains(&name) || self.stack.len() >= MAX_DEPTH {
            return named();
        }
        let Some(container) = self.formats.get(name) else {
            return named();
        };
        self.stack.push(name);
        let shape = match container {
            ContainerFormat::UnitStruct => ("()".to_owned(), Vec::new()),
            // A newtype travels as its content.
            ContainerFormat::NewTypeStruct(inner) => self.shape(inner),
            ContainerFormat::TupleStruct(elements) => self.tuple(elements),
            ContainerFormat::Struct(fields) => (name.to_owned(), self.fields(fields)),
            ContainerFormat::Enum(variants) => (
                format!("enum {name}"),
                variants.values().map(|v| self.variant(v)).collect(),
            ),
        };
        self.stack.pop();
        shape
    }

    fn fields(&mut self, fields: &'a [Named<Format>]) -> Vec<Value> {
        fields
            .iter()
            .map(|f| self.value(&f.name, &f.value))
            .collect()
    }

    fn variant(&mut self, variant: &'a Named<VariantFormat>) -> Value {
        let name = &variant.name;
        match &variant.value {
            VariantFormat::NewType(inner) => self.value(name, inner),
            VariantFormat::Tuple(elements) => {
                let (type_name, values) = self.tuple(elements);
                Value {
                    name: name.clone(),
                    type_name,
                    values,
                }
            }
            VariantFormat::Struct(fields) => Value {
                name: name.clone(),
                type_name: name.clone(),
                values: self.fields(fields),
            },
            VariantFormat::Unit | VariantFormat::Variable(_) => Value {
                name: name.clone(),
                type_name: "()".to_owned(),
                values: Vec::new(),
            },
        }
    }
}

/// The schema of a value of type `type_name` whose innermost type has `values`.
fn schema(type_name: &str, values: &[Value]) -> serde_json::Value {
    if let Some(inner) = type_name.strip_prefix('*') {
        return json!({ "anyOf": [schema(inner, values), { "type": "null" }] });
    }
    if let Some(inner) = type_name.strip_prefix("[]") {
        return json!({ "type": "array", "items": schema(inner, values) });
    }
    if let Some(rest) = type_name.strip_prefix("map[") {
        let inner = closing_bracket(rest).map_or("", |end| &rest[end + 1..]);
        return json!({ "type": "object", "additionalProperties": schema(inner, values) });
    }
    if let Some(rest) = type_name.strip_prefix('[') {
        if let Some((size, inner)) = rest
            .split_once(']')
            .and_then(|(n, inner)| Some((n.parse::<usize>().ok()?, inner)))
        {
            return json!({
                "type": "array",
                "items": schema(inner, values),
                "minItems": size,
                "maxItems": size,
            });
        }
    }
    if type_name.starts_with('(') && type_name != "()" {
        let items: Vec<_> = values.iter().map(Value::json_schema).collect();
        return json!({
            "type": "array",
            "prefixItems": items,
            "minItems": values.len(),
            "maxItems": values.len(),
        });
    }
    if let Some(name) = type_name.strip_prefix("enum ") {
        let variants: Vec<_> = values.iter().map(variant_schema).collect();
        return json!({ "title": name, "oneOf": variants });
    }
    let integer = |min: i64, max: i64| json!({ "type": "integer", "minimum": min, "maximum": max });
    match type_name {
        "()" => json!({ "type": "null" }),
        "bool" => json!({ "type": "boolean" }),
        "string" => json!({ "type": "string" }),
        "char" => json!({ "type": "string", "minLength": 1, "maxLength": 1 }),
        "int8" => integer(i8::MIN.into(), i8::MAX.into()),
        "int16" => integer(i16::MIN.into(), i16::MAX.into()),
        "int32" => integer(i32::MIN.into(), i32::MAX.into()),
        "uint8" => integer(0, u8::MAX.into()),
        "uint16" => integer(0, u16::MAX.into()),
        "uint32" => integer(0, u32::MAX.into()),
        "int64" | "int128" => json!({ "type": "integer" }),
        "uint64" | "uint128" => json!({ "type": "integer", "minimum": 0 }),
        "float32" | "float64" => json!({ "type": "number" }),
        _ if values.is_empty() => json!({ "title": type_name }),
        _ => {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for field in values {
                properties.insert(field.name.clone(), field.json_schema());
                if !field.type_name.starts_with('*') {
                    required.push(field.name.clone());
                }
            }
            json!({
                "title": type_name,
                "type": "object",
                "properties": properties,
                "required": required,
            })
        }
    }
}

/// An enum variant as serde_json writes it: a unit variant is its name, any other an object
/// with the name as its only key.
fn variant_schema(variant: &Value) -> serde_json::Value {
    if variant.type_name == "()" {
        return json!({ "const": variant.name });
    }
    json!({
        "type": "object",
        "properties": { variant.name.clone(): variant.json_schema() },
        "required": [variant.name],
        "additionalProperties": false,
    })
}

/// Where the `]` that closes an already opened `[` is in `text`.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Consignment {
        id: String,
        weight: i32,
        containers: Vec<Container>,
        status: Status,
        tags: BTreeMap<String, Vec<u8>>,
        vessel: Option<VesselId>,
        at: (f64, String),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Container {
        #[serde(rename = "customerId")]
        customer_id: String,
        size: [u16; 3],
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "snake_case")]
    enum Status {
        Pending,
        Shipped(String),
        Lost { since: u64 },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct VesselId(String);

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Tree {
        label: String,
        children: Vec<Tree>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(tag = "kind")]
    enum Tagged {
        A { x: u8 },
    }

    fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
        v.values
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {v:?}"))
    }

    #[test]
    fn nested_structs_options_enums_and_maps_are_described_in_go_micro_shape() {
        let v = Value::of::<Consignment>("Consignment");
        assert_eq!(
            (v.name.as_str(), v.type_name.as_str()),
            ("Consignment", "Consignment")
        );
        let types: Vec<(&str, &str)> = v
            .values
            .iter()
            .map(|f| (f.name.as_str(), f.type_name.as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("id", "string"),
                ("weight", "int32"),
                ("containers", "[]Container"),
                ("status", "enum Status"),
                ("tags", "map[string][]uint8"),
                ("vessel", "*string"),
                ("at", "(float64, string)"),
            ]
        );
        let containers = field(&v, "containers");
        assert_eq!(field(containers, "customerId").type_name, "string");
        assert_eq!(field(containers, "size").type_name, "[3]uint16");
        let status = field(&v, "status");
        let variants: Vec<(&str, &str)> = status
            .values
            .iter()
            .map(|f| (f.name.as_str(), f.type_name.as_str()))
            .collect();
        assert_eq!(
            variants,
            [("pending", "()"), ("shipped", "string"), ("lost", "lost")]
        );
        assert_eq!(field(field(status, "lost"), "since").type_name, "uint64");
    }

    #[test]
    fn a_recursive_type_is_expanded_once() {
        let v = Value::of::<Tree>("Tree");
        let children = field(&v, "children");
        assert_eq!(children.type_name, "[]Tree");
        assert!(children.values.is_empty(), "{children:?}");
    }

    #[test]
    fn untraceable_types_degrade_to_their_name() {
        assert_eq!(Value::of::<Tagged>("Tagged"), Value::named("Tagged"));
        assert_eq!(Value::of::<()>("()"), Value::named("()"));
        assert_eq!(Value::of::<Vec<u64>>("Vec<u64>").type_name, "[]uint64");
    }

    #[test]
    fn the_json_schema_accepts_what_serde_json_writes() {
        let schema = Value::of::<Consignment>("Consignment").json_schema();
        assert_eq!(
            schema["required"],
            json!(["id", "weight", "containers", "status", "tags", "at"])
        );
        let props = &schema["properties"];
        assert_eq!(
            props["containers"]["items"]["properties"]["size"]["maxItems"],
            3
        );
        assert_eq!(
            props["tags"]["additionalProperties"]["items"]["maximum"],
            255
        );
        assert_eq!(props["vessel"]["anyOf"][1]["type"], "null");
        assert_eq!(props["at"]["prefixItems"][1]["type"], "string");
        let variants = &props["status"]["oneOf"];
        assert_eq!(variants[0], json!({ "const": "pending" }));
        assert_eq!(variants[1]["required"], json!(["shipped"]));
        assert_eq!(
            variants[2]["properties"]["lost"]["properties"]["since"]["minimum"],
            0
        );
        assert_eq!(
            Value::named("serde_json::Value").json_schema(),
            json!({ "title": "serde_json::Value" })
        );
    }
}
