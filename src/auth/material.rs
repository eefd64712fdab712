//! Secret material: the named fields a credential's templates read, built from decrypted secrets.

use std::collections::BTreeMap;

use crate::secret::{SecretBytes, SecretString};

/// Named secret fields. A single secret is field `secret`; a secret whose value is a JSON
/// object also contributes each top-level string or number (nested objects as `a.b`); a
/// multi-secret registry credential contributes one field per secret, named by the registry.
#[derive(Default, Debug)]
pub struct Material {
    fields: BTreeMap<String, SecretString>,
    /// Fields that were JSON objects (their members are fields of their own).
    objects: std::collections::BTreeSet<String>,
}

impl Material {
    /// Material for one secret read through field `secret`.
    pub fn single(value: SecretBytes) -> Material {
        let mut m = Material::default();
        m.add("secret", &value);
        m
    }

    /// Adds `value` as field `name` and, if it is a JSON object, its members.
    pub fn add(&mut self, name: &str, value: &SecretBytes) {
        if let Some(text) = value.expose_str() {
            self.fields.insert(name.to_owned(), SecretString::new(text.to_owned()));
            if text.trim_start().starts_with('{') {
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) {
                    self.objects.insert(name.to_owned());
                    self.flatten("", &map);
                }
            }
        }
    }

    fn flatten(&mut self, prefix: &str, map: &serde_json::Map<String, serde_json::Value>) {
        for (k, v) in map {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                serde_json::Value::String(s) => {
                    self.fields.insert(key, SecretString::new(s.clone()));
                }
                serde_json::Value::Number(n) => {
                    self.fields.insert(key, SecretString::new(n.to_string()));
                }
                serde_json::Value::Object(inner) => self.flatten(&key, inner),
                _ => {}
            }
        }
    }

    pub fn field(&self, name: &str) -> Option<&SecretString> {
        self.fields.get(name)
    }

    /// Every field value (for masking echoes of them in responses).
    pub fn values(&self) -> impl Iterator<Item = &SecretString> {
        self.fields.values()
    }

    /// The secret values themselves: every field but a JSON object whose members are fields
    /// (what an echo can contain; masking the members masks the object).
    pub fn leaf_values(&self) -> impl Iterator<Item = &SecretString> {
        self.fields.iter().filter(|(k, _)| !self.objects.contains(*k)).map(|(_, v)| v)
    }

    /// Field names only, for error messages and `describe`.
    pub fn field_names(&self) -> Vec<&str> {
        self.fields.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_values_are_the_members_not_the_object() {
        let mut m = Material::default();
        m.add("secret", &SecretBytes::from_str_copy(r#"{"access_key_id":"AKIA1","secret_access_key":"s3cr3t"}"#));
        m.add("other", &SecretBytes::from_str_copy("{not json"));
        let mut leaves: Vec<&str> = m.leaf_values().map(|v| v.expose()).collect();
        leaves.sort_unstable();
        assert_eq!(leaves, ["AKIA1", "s3cr3t", "{not json"]);
    }

    #[test]
    fn json_members_become_fields() {
        let mut m = Material::default();
        m.add("secret", &SecretBytes::from_str_copy(r#"{"api_key":"a","n":5,"o":{"x":"y"}}"#));
        assert_eq!(m.field("api_key").unwrap().expose(), "a");
        assert_eq!(m.field("n").unwrap().expose(), "5");
        assert_eq!(m.field("o.x").unwrap().expose(), "y");
        assert!(m.field("secret").is_some());
        assert!(!format!("{m:?}").contains("api_key\": \"a"));
    }
}
