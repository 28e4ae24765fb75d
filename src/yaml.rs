//! A small block-style YAML 1.2 emitter for JSON values (the AsyncAPI document): mappings and
//! sequences in block style, multi-line text as literal blocks, every other string plain when
//! that cannot be read as anything else and double-quoted (JSON escapes, which YAML shares)
//! otherwise. Keys keep their order. No dependency: the output only has to be read back.

use serde_json::Value;

/// Appends `value` as a YAML document to `out`.
pub fn write(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) if !map.is_empty() => mapping(out, map, 0),
        Value::Array(items) if !items.is_empty() => sequence(out, items, 0),
        _ => {
            out.push_str(&scalar(value));
            out.push('\n');
        }
    }
}

/// Appends a top-level mapping whose keys keep the given order.
pub fn write_mapping(out: &mut String, entries: &[(String, Value)]) {
    for (key, value) in entries {
        out.push_str(&string(key));
        out.push(':');
        entry(out, value, 0);
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn mapping(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        // A mapping inside a sequence item starts on the item's `- ` line.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&string(key));
        out.push(':');
        entry(out, value, indent);
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => mapping(out, map, indent + 2),
            Value::Array(inner) if !inner.is_empty() => sequence(out, inner, indent + 2),
            _ => {
                out.push_str(&block_or_scalar(item, indent + 2));
                out.push('\n');
            }
        }
    }
}

/// The value after `key:` at `indent`.
fn entry(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(out, items, indent + 2);
        }
        _ => {
            out.push(' ');
            out.push_str(&block_or_scalar(value, indent + 2));
            out.push('\n');
        }
    }
}

/// Multi-line text as a literal block (`|-`) indented to `indent`, else a scalar.
fn block_or_scalar(value: &Value, indent: usize) -> String {
    if let Value::String(text) = value
        && literal_block_fits(text)
    {
        let mut block = String::from("|-");
        for line in text.split('\n') {
            block.push('\n');
            if !line.is_empty() {
                block.extend(std::iter::repeat_n(' ', indent));
                block.push_str(line);
            }
        }
        return block;
    }
    scalar(value)
}

/// A literal block keeps the text as is when it has several lines, starts with no space, ends
/// without a newline, has no trailing blanks and only printable characters (and no tab).
fn literal_block_fits(text: &str) -> bool {
    text.contains('\n')
        && !text.starts_with([' ', '\n'])
        && !text.ends_with('\n')
        && text
            .split('\n')
            .all(|line| !line.ends_with(' ') && !line.chars().any(char::is_control))
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => string(text),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        other => other.to_string(),
    }
}

/// Plain when unambiguous: starts with a letter, `_`, `$` or `/`, holds only letters, digits
/// and ` _-./$()`+,'` (nothing YAML reads as structure: no `:`, `#`, brackets or quotes at the
/// start), does not end with a space, and is no YAML keyword. Otherwise JSON-quoted.
fn string(text: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
    ];
    let plain = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '$' | '/'))
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-./$()`+,'".contains(c))
        && !text.ends_with(' ')
        && !KEYWORDS.contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_owned()
    } else {
        serde_json::to_string(text).expect("a string serializes")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn yaml(value: &Value) -> String {
        let mut out = String::new();
        write(&mut out, value);
        out
    }

    #[test]
    fn nests_mappings_and_sequences_in_block_style() {
        let value = json!({
            "a": {"b": 1, "c": [true, null, {"d": "x", "e": []}], "f": {}},
            "g": [[1, 2], "three"],
        });
        assert_eq!(
            yaml(&value),
            "a:\n  b: 1\n  c:\n    - true\n    - null\n    - d: x\n      e: []\n  f: {}\n\
             g:\n  - - 1\n    - 2\n  - three\n"
        );
    }

    #[test]
    fn quotes_what_could_read_as_something_else() {
        let value = json!({
            "$ref": "#/components/schemas/X",
            "plain": "Send `typing` (ephemeral)",
            "kw": "null",
            "num": "1.5",
            "colon": "a: b",
            "host": "{host}",
            "empty": "",
            "unicode": "caf\u{e9}",
        });
        assert_eq!(
            yaml(&value),
            "$ref: \"#/components/schemas/X\"\ncolon: \"a: b\"\nempty: \"\"\nhost: \"{host}\"\n\
             kw: \"null\"\nnum: \"1.5\"\nplain: Send `typing` (ephemeral)\nunicode: \"caf\u{e9}\"\n"
        );
    }

    #[test]
    fn writes_multi_line_text_as_a_literal_block() {
        let value = json!({"d": "one\n\ntwo: 2"});
        assert_eq!(yaml(&value), "d: |-\n  one\n\n  two: 2\n");
        let trailing = json!({"d": "one \ntwo"});
        assert_eq!(yaml(&trailing), "d: \"one \\ntwo\"\n");
    }
}
