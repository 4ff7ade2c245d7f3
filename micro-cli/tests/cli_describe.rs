//! `micro describe` shows each endpoint's fields, from descriptions the service registered in
//! go-micro's `Value` shape.

mod support;

use serde_json::Value as Json;
use support::{SHIPPY, World};

/// Asserts that `v` is a go-micro `registry.Value`: exactly `name` and `type` strings and
/// `values`, a list of the same shape.
#[track_caller]
fn assert_go_micro_value(v: &Json) {
    let object = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["name", "type", "values"], "{v}");
    assert!(v["name"].is_string() && v["type"].is_string(), "{v}");
    for inner in v["values"]
        .as_array()
        .unwrap_or_else(|| panic!("values: {v}"))
    {
        assert_go_micro_value(inner);
    }
}

/// The `(name, type)` of each field of `v`.
fn fields(v: &Json) -> Vec<(&str, &str)> {
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect()
}

#[test]
fn describe_shows_the_consignment_fields_and_the_registry_holds_go_micro_values() {
    let world = World::new();
    let _shippy = world.shippy();

    let text = world.run(&["describe", SHIPPY]).ok().to_owned();
    let create = text
        .split("\n\n")
        .find(|block| block.starts_with("Shipping.CreateConsignment\n"))
        .unwrap_or_else(|| panic!("no field block for CreateConsignment in {text}"));
    let rows: Vec<Vec<&str>> = create
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[1].join(" "),
        "Stores a consignment on a vessel that can carry it, giving it an id if it has none."
    );
    for row in [
        vec!["request", "Consignment"],
        vec!["description", "string"],
        vec!["weight", "int32"],
        vec!["containers", "[]Container"],
        vec!["customer_id", "string"],
        vec!["response", "Response"],
        vec!["consignment", "*Consignment"],
    ] {
        assert!(rows.contains(&row), "{row:?} in {create}");
    }
    // Nested fields are indented under their parent.
    let lines: Vec<&str> = create.lines().collect();
    let containers = lines
        .iter()
        .position(|l| l.starts_with("    containers "))
        .unwrap_or_else(|| panic!("containers under the request in {create}"));
    assert!(lines[containers + 1].starts_with("      id "), "{create}");

    let json = world.run(&["describe", SHIPPY, "--output", "json"]).json();
    let endpoints = json[0]["endpoints"].as_array().expect("endpoints");
    for endpoint in endpoints {
        let mut keys: Vec<&str> = endpoint
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["metadata", "name", "request", "response"],
            "{endpoint}"
        );
        assert!(
            endpoint["metadata"]
                .as_object()
                .unwrap()
                .values()
                .all(Json::is_string),
            "go-micro metadata is map[string]string: {endpoint}"
        );
        assert_go_micro_value(&endpoint["request"]);
        assert_go_micro_value(&endpoint["response"]);
    }
    let create = endpoints
        .iter()
        .find(|e| e["name"] == "Shipping.CreateConsignment")
        .expect("CreateConsignment registered");
    assert_eq!(create["request"]["name"], "Consignment");
    assert_eq!(create["request"]["type"], "Consignment");
    assert_eq!(
        fields(&create["request"]),
        [
            ("id", "string"),
            ("description", "string"),
            ("weight", "int32"),
            ("containers", "[]Container"),
            ("vessel_id", "string"),
        ]
    );
    assert_eq!(
        fields(&create["request"]["values"][3]),
        [
            ("id", "string"),
            ("customer_id", "string"),
            ("origin", "string"),
            ("user_id", "string"),
        ]
    );
    assert_eq!(
        create["metadata"]["description"],
        "Stores a consignment on a vessel that can carry it, giving it an id if it has none."
    );
    let schema: micro::registry::Value =
        serde_json::from_value(create["request"].clone()).expect("a registry Value");
    assert_eq!(
        schema.json_schema()["required"],
        serde_json::json!(["id", "description", "weight", "containers", "vessel_id"])
    );
}
