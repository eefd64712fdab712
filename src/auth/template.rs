//! `{{field}}` templates that turn secret material into header, query or path values.

use std::fmt;

use super::{AuthError, Material};
use crate::secret::SecretString;

/// A parsed template: literal text and named fields.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(String),
}

impl Template {
    /// Parses `text`. Fails on CR, LF or NUL, on unbalanced braces and on bad field names.
    pub fn parse(text: &str) -> Result<Template, AuthError> {
        if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(AuthError::InvalidTemplate(format!(
                "template '{}' contains a line break or NUL",
                text.escape_debug()
            )));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| AuthError::InvalidTemplate(format!("template '{text}' has an unclosed '{{{{'")))?;
            let name = after[..end].trim();
            let ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(AuthError::InvalidTemplate(format!("template '{text}' has a bad field name '{name}'")));
            }
            parts.push(Part::Field(name.to_owned()));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(AuthError::InvalidTemplate(format!("template '{text}' has a stray '}}}}'")));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Parses and requires at least one field, so a template cannot inject a constant.
    pub fn parse_with_field(text: &str) -> Result<Template, AuthError> {
        let t = Template::parse(text)?;
        if t.fields().next().is_none() {
            return Err(AuthError::InvalidTemplate(format!(
                "template '{text}' has no {{{{secret}}}} or {{{{field}}}} placeholder"
            )));
        }
        Ok(t)
    }

    /// The field names the template reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The literal text before the first field (used to redact path prefixes).
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(l)) => l,
            _ => "",
        }
    }

    /// Renders with `material`. The result must not contain CR, LF or NUL.
    pub fn render(&self, material: &Material) -> Result<SecretString, AuthError> {
        let value = |f: &String| material.field(f).ok_or_else(|| AuthError::MissingField(f.clone()));
        // Sized first: the string is allocated once, so no regrowth leaves a partial copy of the
        // secret behind in freed memory (only the final buffer is zeroized on drop).
        let mut len = 0;
        for part in &self.parts {
            len += match part {
                Part::Literal(l) => l.len(),
                Part::Field(f) => value(f)?.expose().len(),
            };
        }
        let mut out = zeroize::Zeroizing::new(String::with_capacity(len));
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Field(f) => out.push_str(value(f)?.expose()),
            }
        }
        let out = SecretString::new(std::mem::take(&mut *out));
        if out.expose().bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(AuthError::UnsafeValue);
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(l) => f.write_str(l)?,
                Part::Field(name) => write!(f, "{{{{{name}}}}}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("Bearer {{secret}}", Ok(&["secret"])),
            ("{{secret}}", Ok(&["secret"])),
            ("{{ api_key }}:{{app_key}}", Ok(&["api_key", "app_key"])),
            ("plain", Ok(&[])),
            ("Bearer {{secret", Err("unclosed")),
            ("Bearer {{}}", Err("bad field name")),
            ("Bearer {{se cret}}", Err("bad field name")),
            ("Bearer {{secret}}\r\nX-Evil: 1", Err("line break")),
            ("a}}b", Err("stray")),
        ];
        for (input, want) in cases {
            match (Template::parse(input), want) {
                (Ok(t), Ok(fields)) => assert_eq!(t.fields().collect::<Vec<_>>(), *fields, "{input}"),
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn render_and_unsafe_values() {
        let t = Template::parse_with_field("Bearer {{secret}}").unwrap();
        let m = Material::single(SecretBytes::from_str_copy("sk-1"));
        assert_eq!(t.render(&m).unwrap().expose(), "Bearer sk-1");
        let bad = Material::single(SecretBytes::from_str_copy("sk-1\r\nX-Evil: yes"));
        assert!(matches!(t.render(&bad), Err(AuthError::UnsafeValue)));
        let missing = Template::parse("{{app_key}}").unwrap();
        assert!(matches!(missing.render(&m), Err(AuthError::MissingField(f)) if f == "app_key"));
        assert!(Template::parse_with_field("Bearer constant").is_err());
    }

    /// A rendered value is allocated once at its exact size: a buffer that grew on the way would
    /// have freed, unzeroized copies of the secret.
    #[test]
    fn a_rendered_value_is_allocated_once() {
        let long = "k".repeat(300);
        let m = Material::single(SecretBytes::from_str_copy(&long));
        for text in ["Bearer {{secret}}", "{{secret}}", "a {{secret}} b {{secret}} c"] {
            let out = Template::parse_with_field(text).unwrap().render(&m).unwrap();
            assert_eq!(out.capacity(), out.expose().len(), "{text}");
        }
        let joined = SecretString::concat(&["Basic ", &long]);
        assert_eq!((joined.capacity(), joined.expose().len()), (306, 306));
    }
}
