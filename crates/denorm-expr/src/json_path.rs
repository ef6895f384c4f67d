//! SQLite's JSON access: `json_extract(j, path)`, `j -> path` and
//! `j ->> path` (`json.c`), for documents in standard JSON (RFC 8259).
//!
//! ```text
//!  text ──parse──► Node (tokens kept as written) ──path──► Node ──► SQL value (json_extract, ->>)
//!                                                               └─► minified JSON text (->)
//! ```
//!
//! Results as SQLite gives them: a JSON string is its unescaped text, an
//! integer an INTEGER (beyond 64 bits a REAL), other numbers a REAL, `true`
//! and `false` 1 and 0, `null` and a missing element NULL, an array or an
//! object its minified text with every token as written. `->` and `->>`
//! accept SQLite's abbreviations (`'key'`, an integer index, `'[2]'`).
//!
//! SQLite also reads JSON5 (comments, single quotes, hexadecimal, trailing
//! commas…): such a document is an evaluation error here, never a guess.

use denorm_types::Datum;

use crate::eval::EvalError;

type Result<T> = std::result::Result<T, EvalError>;

/// The nesting SQLite allows (`JSON_MAX_DEPTH`).
const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
enum Node<'a> {
    Null,
    True,
    False,
    /// A number token as written; `integer` when it has no fraction or exponent.
    Number {
        text: &'a str,
        integer: bool,
    },
    /// The text between the quotes, escapes as written.
    String(&'a str),
    /// The items and the array's text as written (`[` to `]`).
    Array(Vec<Node<'a>>, &'a str),
    /// Members in document order (a repeated key: SQLite finds the first,
    /// PostgreSQL the last) and the object's text as written.
    Object(Vec<(&'a str, Node<'a>)>, &'a str),
}

fn malformed() -> EvalError {
    EvalError::InvalidArgument("malformed JSON (denorm reads standard JSON, not JSON5)".to_string())
}

fn bad_path(path: &str) -> EvalError {
    EvalError::InvalidArgument(format!("bad JSON path: '{path}'"))
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, word: &str) -> Result<()> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(malformed())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>> {
        if depth > MAX_DEPTH {
            return Err(malformed());
        }
        self.skip_space();
        let node = match self.peek().ok_or_else(malformed)? {
            b'n' => self.expect("null").map(|_| Node::Null)?,
            b't' => self.expect("true").map(|_| Node::True)?,
            b'f' => self.expect("false").map(|_| Node::False)?,
            b'"' => Node::String(self.string()?),
            b'[' => self.array(depth)?,
            b'{' => self.object(depth)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return Err(malformed()),
        };
        self.skip_space();
        Ok(node)
    }

    fn string(&mut self) -> Result<&'a str> {
        let start = self.at + 1;
        let bytes = self.text.as_bytes();
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    self.at = i + 1;
                    return Ok(&self.text[start..i]);
                }
                b'\\' => {
                    match bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') if bytes.len() >= i + 6 && bytes[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) => {
                            i += 6
                        }
                        _ => return Err(malformed()),
                    }
                    continue;
                }
                c if c < 0x20 => return Err(malformed()),
                _ => i += 1,
            }
        }
        Err(malformed())
    }

    fn number(&mut self) -> Result<Node<'a>> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut i = start + usize::from(bytes[start] == b'-');
        let digits = |i: &mut usize| {
            let from = *i;
            while *i < bytes.len() && bytes[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - from
        };
        let first = i;
        let n = digits(&mut i);
        if n == 0 || (n > 1 && bytes[first] == b'0') {
            return Err(malformed());
        }
        let mut integer = true;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            if digits(&mut i) == 0 {
                return Err(malformed());
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            integer = false;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(malformed());
            }
        }
        self.at = i;
        Ok(Node::Number { text: &self.text[start..i], integer })
    }

    fn array(&mut self, depth: usize) -> Result<Node<'a>> {
        let start = self.at;
        self.at += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Node::Array(items, &self.text[start..self.at]));
        }
        loop {
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Node::Array(items, &self.text[start..self.at]));
                }
                _ => return Err(malformed()),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node<'a>> {
        let start = self.at;
        self.at += 1;
        let mut members = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Node::Object(members, &self.text[start..self.at]));
        }
        loop {
            self.skip_space();
            if self.peek() != Some(b'"') {
                return Err(malformed());
            }
            let key = self.string()?;
            self.skip_space();
            self.expect(":")?;
            members.push((key, self.value(depth + 1)?));
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Node::Object(members, &self.text[start..self.at]));
                }
                _ => return Err(malformed()),
            }
        }
    }
}

fn parse(text: &str) -> Result<Node<'_>> {
    let mut parser = Parser { text, at: 0 };
    let node = parser.value(0)?;
    if parser.at != text.len() {
        return Err(malformed());
    }
    Ok(node)
}

/// The text of a JSON string's content with its escapes decoded (invalid
/// surrogates dropped, as SQLite does).
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let mut v = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                if (0xd800..0xdc00).contains(&v) {
                    let rest = chars.as_str();
                    let low = rest
                        .strip_prefix("\\u")
                        .and_then(|r| r.get(..4))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|l| (0xdc00..0xe000).contains(l));
                    match low {
                        Some(l) => {
                            chars.by_ref().take(6).for_each(drop);
                            v = 0x10000 + ((v - 0xd800) << 10) + (l - 0xdc00);
                        }
                        None => continue,
                    }
                }
                out.extend(char::from_u32(v));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Follows `path` (after the `$`); `Ok(None)` when nothing is there.
fn lookup<'n, 'a>(mut node: &'n Node<'a>, full: &str) -> Result<Option<&'n Node<'a>>> {
    let mut path = full.strip_prefix('$').ok_or_else(|| bad_path(full))?;
    while !path.is_empty() {
        if let Some(rest) = path.strip_prefix('.') {
            let (key, rest) = if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').ok_or_else(|| bad_path(full))?;
                (unescape(&quoted[..end]), &quoted[end + 1..])
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                if end == 0 {
                    return Err(bad_path(full));
                }
                (rest[..end].to_string(), &rest[end..])
            };
            path = rest;
            let Node::Object(members, _) = node else { return Ok(None) };
            match members.iter().find(|(label, _)| unescape(label) == key) {
                Some((_, value)) => node = value,
                None => return Ok(None),
            }
        } else if let Some(rest) = path.strip_prefix('[') {
            let end = rest.find(']').ok_or_else(|| bad_path(full))?;
            let index = &rest[..end];
            path = &rest[end + 1..];
            let Node::Array(items, _) = node else { return Ok(None) };
            let position = if let Some(back) = index.strip_prefix("#-") {
                let n: usize = back.parse().map_err(|_| bad_path(full))?;
                items.len().checked_sub(n)
            } else if index == "#" {
                None
            } else if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) {
                Some(index.parse::<usize>().unwrap_or(usize::MAX))
            } else {
                return Err(bad_path(full));
            };
            match position.and_then(|p| items.get(p)) {
                Some(item) => node = item,
                None => return Ok(None),
            }
        } else {
            return Err(bad_path(full));
        }
    }
    Ok(Some(node))
}

/// Minified JSON text of a node, every token as written.
fn write(node: &Node<'_>, out: &mut String) {
    match node {
        Node::Null => out.push_str("null"),
        Node::True => out.push_str("true"),
        Node::False => out.push_str("false"),
        Node::Number { text, .. } => out.push_str(text),
        Node::String(raw) => {
            out.push('"');
            out.push_str(raw);
            out.push('"');
        }
        Node::Array(items, _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Node::Object(members, _) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                out.push_str(key);
                out.push_str("\":");
                write(value, out);
            }
            out.push('}');
        }
    }
}

/// The SQL value of a node (`json_extract`, `->>`).
fn sql_value<'r>(node: &Node<'_>) -> Datum<'r> {
    match node {
        Node::Null => Datum::Null,
        Node::True => Datum::Int(1),
        Node::False => Datum::Int(0),
        Node::Number { text, integer: true } => match text.parse::<i64>() {
            Ok(i) => Datum::Int(i),
            Err(_) if *text == "-9223372036854775808" => Datum::Int(i64::MIN),
            Err(_) => Datum::Float(text.parse().unwrap_or(0.0)),
        },
        Node::Number { text, .. } => Datum::Float(text.parse().unwrap_or(0.0)),
        Node::String(raw) => Datum::owned_text(unescape(raw)),
        other => {
            let mut out = String::new();
            write(other, &mut out);
            Datum::owned_text(out)
        }
    }
}

/// The path `->`/`->>` mean by their right operand: a path, an integer
/// index (negative from the end), `[…]`, or an object label.
fn abbreviated(path: &Datum<'_>) -> Option<String> {
    Some(match path {
        Datum::Int(i) if *i < 0 => format!("$[#{i}]"),
        Datum::Int(i) => format!("$[{i}]"),
        Datum::Text(t) if t.starts_with('$') => t.to_string(),
        // An empty label makes the path `$.`, an error, as in SQLite.
        Datum::Text(t) if t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => format!("$.{t}"),
        Datum::Text(t) if t.len() >= 3 && t.starts_with('[') && t.ends_with(']') => format!("${t}"),
        Datum::Text(t) => format!("$.\"{t}\""),
        Datum::Float(x) => format!("$.\"{}\"", denorm_types::json::sqlite_float_text(*x)),
        _ => return None,
    })
}

/// What a JSON access returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonAccess {
    /// `json_extract(j, path)`: the SQL value; the path must start with `$`.
    Extract,
    /// `j -> path`: the element's JSON text.
    Json,
    /// `j ->> path`: the SQL value.
    Value,
    /// PostgreSQL's `j -> key` / `j -> index`: the element's JSON text as
    /// written in the document.
    PgJson,
    /// PostgreSQL's `j ->> key` / `j ->> index`: the element as text (a
    /// string unescaped, `null` SQL NULL, anything else its JSON text).
    PgText,
    /// [`JsonAccess::PgJson`] on a `jsonb` value, which reads a bare scalar
    /// as a one-element array (`'42'::jsonb -> 0` and `-> -1` are `42`).
    PgJsonbJson,
    /// [`JsonAccess::PgText`] on a `jsonb` value.
    PgJsonbText,
    /// PostgreSQL's `j #> '{a,0}'`: the element at a path, as JSON.
    PgPathJson,
    /// PostgreSQL's `j #>> '{a,0}'`: the element at a path, as text.
    PgPathText,
}

/// One step of a PostgreSQL access: an object key or an array index.
enum PgStep<'p> {
    Key(&'p str),
    Index(i64),
    /// A path element: a key for an object, an integer (`strtol`'s reading)
    /// for an array.
    Either(&'p str),
}

/// PostgreSQL's step from `node` (`jsonb_object_field`,
/// `jsonb_array_element`, `json_extract_path`): a key finds the last member
/// of that name (a `json` document may repeat keys; `jsonb` keeps the last),
/// an index counts from the end when negative; anything else is nothing.
fn pg_step<'n, 'a>(node: &'n Node<'a>, step: &PgStep<'_>) -> Option<&'n Node<'a>> {
    match (node, step) {
        (Node::Object(members, _), PgStep::Key(key) | PgStep::Either(key)) => {
            members.iter().rev().find(|(label, _)| unescape(label) == *key).map(|(_, value)| value)
        }
        (Node::Array(items, _), PgStep::Index(i)) => pg_index(items, *i),
        (Node::Array(items, _), PgStep::Either(text)) => pg_index(items, pg_integer(text)?),
        _ => None,
    }
}

fn pg_index<'n, 'a>(items: &'n [Node<'a>], i: i64) -> Option<&'n Node<'a>> {
    let position = if i < 0 { i.checked_add(i64::try_from(items.len()).ok()?)? } else { i };
    items.get(usize::try_from(position).ok()?)
}

/// A path element read as an array index the way PostgreSQL's `strtol`
/// does: leading blanks and a sign allowed, nothing after the digits.
fn pg_integer(text: &str) -> Option<i64> {
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i64>().ok().filter(|i| i32::try_from(*i).is_ok())
}

/// The elements of a PostgreSQL `text[]` literal (`'{a,"b c",0}'`); `None`
/// for a NULL element.
fn pg_text_array(literal: &str) -> Result<Vec<Option<String>>> {
    let bad = || EvalError::InvalidArgument(format!("malformed array literal: \"{literal}\""));
    let inner = literal.trim().strip_prefix('{').and_then(|r| r.strip_suffix('}')).ok_or_else(bad)?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut element = String::new();
        let mut quoted = false;
        if chars.next_if_eq(&'"').is_some() {
            quoted = true;
            loop {
                match chars.next().ok_or_else(bad)? {
                    '"' => break,
                    '\\' => element.push(chars.next().ok_or_else(bad)?),
                    c => element.push(c),
                }
            }
            while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                match c {
                    '"' | '{' | '}' => return Err(bad()),
                    '\\' => element.push(chars.next().ok_or_else(bad)?),
                    c => element.push(c),
                }
            }
            element.truncate(element.trim_end_matches(|c: char| c.is_ascii_whitespace()).len());
            if element.is_empty() {
                return Err(bad());
            }
        }
        out.push(if !quoted && element.eq_ignore_ascii_case("null") { None } else { Some(element) });
        match chars.next() {
            None => return Ok(out),
            Some(',') => {}
            Some(_) => return Err(bad()),
        }
    }
}

/// A node's text as PostgreSQL's JSON operators return it: as written in
/// the document (a `jsonb` value's text is already its canonical form).
fn pg_json<'r>(node: &Node<'_>) -> Datum<'r> {
    Datum::owned_text(match node {
        Node::Null => "null".to_string(),
        Node::True => "true".to_string(),
        Node::False => "false".to_string(),
        Node::Number { text, .. } => text.to_string(),
        Node::String(raw) => format!("\"{raw}\""),
        Node::Array(_, raw) | Node::Object(_, raw) => raw.to_string(),
    })
}

/// A node as `->>` returns it: a string's text, `null` as SQL NULL.
fn pg_text<'r>(node: &Node<'_>) -> Result<Datum<'r>> {
    match node {
        Node::Null => Ok(Datum::Null),
        Node::String(raw) => {
            let text = unescape(raw);
            if text.contains('\0') {
                return Err(EvalError::InvalidArgument(
                    "unsupported Unicode escape sequence: \\u0000 cannot be converted to text".to_string(),
                ));
            }
            Ok(Datum::owned_text(text))
        }
        other => Ok(pg_json(other)),
    }
}

/// PostgreSQL's `->`, `->>`, `#>` and `#>>` on a `json`/`jsonb` value's text.
fn pg_access<'r>(kind: JsonAccess, node: &Node<'_>, path: &Datum<'_>) -> Result<Datum<'r>> {
    let found = match (kind, path) {
        (_, Datum::Null) => None,
        (JsonAccess::PgPathJson | JsonAccess::PgPathText, Datum::Text(literal)) => {
            let mut at = Some(node);
            for element in pg_text_array(literal)? {
                let Some(element) = element else { return Ok(Datum::Null) };
                at = at.and_then(|n| pg_step(n, &PgStep::Either(&element)));
            }
            at
        }
        (_, Datum::Text(key)) => pg_step(node, &PgStep::Key(key)),
        // jsonb's raw scalar: a bare scalar is stored as a one-element array.
        (JsonAccess::PgJsonbJson | JsonAccess::PgJsonbText, Datum::Int(0 | -1))
            if !matches!(node, Node::Array(..) | Node::Object(..)) =>
        {
            Some(node)
        }
        (_, Datum::Int(i)) => pg_step(node, &PgStep::Index(*i)),
        (_, other) => return Err(bad_path(&crate::scalar::text(other).unwrap_or_default())),
    };
    match found {
        None => Ok(Datum::Null),
        Some(found) if matches!(kind, JsonAccess::PgJson | JsonAccess::PgJsonbJson | JsonAccess::PgPathJson) => {
            Ok(pg_json(found))
        }
        Some(found) => pg_text(found),
    }
}

/// Evaluates a JSON access of `document` at `path`.
pub(crate) fn access<'r>(kind: JsonAccess, document: &Datum<'_>, path: &Datum<'_>) -> Result<Datum<'r>> {
    let text = match document {
        Datum::Null => return Ok(Datum::Null),
        // A number is a JSON document of its own (json_extract(5, '$') is 5).
        other => crate::scalar::text(other).unwrap_or_default(),
    };
    // The document is read (and a malformed one refused) before the path.
    let node = parse(&text)?;
    if !matches!(kind, JsonAccess::Extract | JsonAccess::Json | JsonAccess::Value) {
        return pg_access(kind, &node, path);
    }
    if path.is_null() {
        return Ok(Datum::Null);
    }
    let path = match (kind, path) {
        (JsonAccess::Extract, Datum::Text(p)) if p.starts_with('$') => p.to_string(),
        (JsonAccess::Extract, other) => {
            return Err(bad_path(&crate::scalar::text(other).unwrap_or_default()));
        }
        (_, p) => abbreviated(p).ok_or_else(|| bad_path(""))?,
    };
    Ok(match lookup(&node, &path)? {
        None => Datum::Null,
        Some(found) if kind == JsonAccess::Json => {
            let mut out = String::new();
            write(found, &mut out);
            Datum::owned_text(out)
        }
        Some(found) => sql_value(found),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL 15's answers (`psql`), as text; `None` is SQL NULL.
    fn pg(kind: JsonAccess, document: &str, path: Datum<'_>) -> Option<String> {
        match access(kind, &Datum::text(document), &path).unwrap() {
            Datum::Null => None,
            Datum::Text(t) => Some(t.to_string()),
            other => panic!("{other:?}"),
        }
    }

    fn key(k: &str) -> Datum<'_> {
        Datum::text(k)
    }

    #[test]
    fn postgres_arrows_return_the_element_as_written() {
        use JsonAccess::{PgJson, PgPathJson, PgPathText, PgText};
        let s = |v: &str| Some(v.to_string());
        // A json document may repeat a key: the last one is found.
        assert_eq!(pg(PgJson, r#"{"a":1,"a":2}"#, key("a")), s("2"));
        assert_eq!(pg(PgJson, r#"{"\u0061":1}"#, key("a")), s("1"));
        assert_eq!(pg(PgJson, r#"{"a": [1,  2 ] }"#, key("a")), s("[1,  2 ]"));
        assert_eq!(pg(PgJson, "[1,2,3]", Datum::Int(-1)), s("3"));
        assert_eq!(pg(PgJson, "[1,2,3]", Datum::Int(-4)), None);
        assert_eq!(pg(PgJson, r#""abc""#, key("a")), None);
        assert_eq!(pg(PgJson, r#"{"a":1}"#, Datum::Int(0)), None);
        assert_eq!(pg(PgJson, "[1]", key("0")), None);
        assert_eq!(pg(PgJson, r#"{"a":1}"#, Datum::Null), None);
        // `->` of JSON null is the JSON `null`; `->>` of it SQL NULL.
        assert_eq!(pg(PgJson, r#"{"a":null}"#, key("a")), s("null"));
        assert_eq!(pg(PgText, r#"{"a":null}"#, key("a")), None);
        assert_eq!(pg(PgText, r#"{"a":"x\ny\u00e9"}"#, key("a")), s("x\nyé"));
        assert_eq!(pg(PgJson, r#"{"a":"x\ny\u00e9"}"#, key("a")), s(r#""x\ny\u00e9""#));
        assert_eq!(pg(PgText, r#"{"a": 1.50, "b": 1e3}"#, key("b")), s("1e3"));
        assert_eq!(pg(PgText, r#"{"a": 1.50, "b": 1e3}"#, key("a")), s("1.50"));
        assert_eq!(pg(PgText, r#"{"a":true}"#, key("a")), s("true"));
        assert!(access(PgText, &Datum::text(r#"{"a":"\u0000"}"#), &key("a")).is_err());
        // Paths: keys for objects, integers (strtol's) for arrays.
        let doc = r#"{"a":{"b":[1,{"c":"d"}]}}"#;
        assert_eq!(pg(PgPathJson, doc, key("{a,b,1}")), s(r#"{"c":"d"}"#));
        assert_eq!(pg(PgPathText, doc, key("{a,b,1,c}")), s("d"));
        assert_eq!(pg(PgPathJson, doc, key("{a,b,-1}")), s(r#"{"c":"d"}"#));
        assert_eq!(pg(PgPathJson, doc, key("{a,b, +1 }")), s(r#"{"c":"d"}"#));
        assert_eq!(pg(PgPathJson, doc, key("{a,b,x}")), None);
        assert_eq!(pg(PgPathJson, doc, key("{a,b,1x}")), None);
        assert_eq!(pg(PgPathJson, doc, key("{a,NULL}")), None);
        assert_eq!(pg(PgPathText, r#" {"a" : [1,2] } "#, key("{}")), s(r#"{"a" : [1,2] }"#));
        assert_eq!(pg(PgPathText, r#"{"a b":[1,2]}"#, key(r#"{"a b"," 0"}"#)), s("1"));
        assert_eq!(pg(PgPathText, r#"{"0":7}"#, key("{0}")), s("7"));
        assert_eq!(pg(PgPathText, r#"{"0":7}"#, key("{0}")), s("7"));
        assert!(access(PgPathText, &Datum::text("{}"), &key("a,b")).is_err());
        // jsonb's raw scalars: index 0 and -1 of a bare scalar are the scalar.
        use JsonAccess::{PgJsonbJson, PgJsonbText};
        assert_eq!(pg(PgJsonbText, "42", Datum::Int(0)), s("42"));
        assert_eq!(pg(PgJsonbText, "42", Datum::Int(-1)), s("42"));
        assert_eq!(pg(PgJsonbJson, r#""s""#, Datum::Int(0)), s(r#""s""#));
        assert_eq!(pg(PgJsonbJson, "null", Datum::Int(0)), s("null"));
        assert_eq!(pg(PgJsonbText, "null", Datum::Int(0)), None);
        assert_eq!(pg(PgJsonbJson, "42", Datum::Int(1)), None);
        assert_eq!(pg(PgJsonbJson, "42", key("a")), None);
        assert_eq!(pg(PgJson, "42", Datum::Int(0)), None);
        assert_eq!(pg(PgPathJson, "42", key("{0}")), None);
    }
}
