//! Every registry file loads through both the JSON Schema and the Rust types.

use aivault::registry::Registry;

fn schema() -> jsonschema::Validator {
    let text = include_str!("../../registry/schemas/registry-provider.schema.json");
    let schema: serde_json::Value = serde_json::from_str(text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn every_builtin_file_passes_schema_and_types() {
    let validator = schema();
    let sources = Registry::builtin_sources();
    assert!(sources.len() >= 40, "only {} providers", sources.len());
    for (file, text) in sources {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        Registry::from_sources(&[(file, text)]).unwrap_or_else(|e| panic!("{e}"));
    }
    Registry::builtin().unwrap();
}

#[test]
fn the_seed_002_contributor_example_loads_and_unknown_fields_fail_both() {
    let example = r#"{
      "$schema": "./schemas/registry-provider.schema.json",
      "provider": "my-api",
      "vaultSecrets": { "MY_API_KEY": "secret" },
      "auth": { "header": { "header_name": "authorization", "value_template": "Bearer {{secret}}" } },
      "hosts": ["api.example.com"],
      "capabilities": [ { "id": "my-api/users", "provider": "my-api",
        "allow": { "hosts": ["api.example.com"], "methods": ["GET", "POST"], "pathPrefixes": ["/v1/users"] } } ]
    }"#;
    let validator = schema();
    let value: serde_json::Value = serde_json::from_str(example).unwrap();
    assert!(validator.is_valid(&value));
    Registry::from_sources(&[("my-api.json", example)]).unwrap();
    let bad = example.replace("\"pathPrefixes\"", "\"typo\": 1, \"pathPrefixes\"");
    let bad_value: serde_json::Value = serde_json::from_str(&bad).unwrap();
    assert!(!validator.is_valid(&bad_value));
    assert!(Registry::from_sources(&[("my-api.json", &bad)]).is_err());
}
