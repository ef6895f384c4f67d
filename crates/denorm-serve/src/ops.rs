//! The PostgREST filter operators beyond comparison, with the semantics
//! PostgreSQL gives them on the closest type denorm has:
//!
//! - `like`, `ilike`: SQL `LIKE`/`ILIKE` (`%` or PostgREST's `*` any run,
//!   `_` one character, `\` escapes), `like` case-sensitive as in
//!   PostgreSQL (not as SQLite's ASCII-insensitive `LIKE`).
//! - `match`, `imatch`: `~`/`~*`, an unanchored regular expression search
//!   (the `regex-lite` syntax: POSIX classes, no backreferences).
//! - `fts`, `plfts`, `phfts`, `wfts`: `to_tsquery`, `plainto_tsquery`,
//!   `phraseto_tsquery`, `websearch_to_tsquery` over text with PostgreSQL's
//!   `simple` configuration: the text's words are its maximal runs of
//!   letters and digits, lowercased, no stemming and no stop words
//!   ([`Tsquery`]). Another configuration (`fts(english)`) is refused.
//! - `cs`, `cd`, `ov`: `@>`, `<@`, `&&` over JSON values (jsonb's
//!   containment; for `ov`, arrays sharing an element), the operand written
//!   as JSON or as a PostgreSQL array literal `{a,b}`.
//! - `sl`, `sr`, `nxr`, `nxl`, `adj`: range operators; denorm has no range
//!   type, so they are refused with a 400 naming the operator.

use denorm_types::Datum;
use serde_json::Value as Json;

/// A compiled `LIKE` or regular expression pattern, compared by its source.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    /// Match against the lowercased text (`ilike`, `imatch`).
    pub fold_case: bool,
    regex: regex_lite::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        (&self.source, self.fold_case) == (&other.source, other.fold_case)
    }
}

impl Pattern {
    /// A `LIKE` pattern; PostgREST's `*` stands for `%`.
    pub fn like(source: &str, fold_case: bool) -> Result<Pattern, String> {
        let pattern = if fold_case { source.to_lowercase() } else { source.to_owned() };
        let mut regex = String::from("(?s)^");
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' | '*' => regex.push_str(".*"),
                '_' => regex.push('.'),
                '\\' => match chars.next() {
                    Some(next) => regex.push_str(&regex_lite::escape(&next.to_string())),
                    None => return Err("a LIKE pattern must not end with the escape character \\".into()),
                },
                c => regex.push_str(&regex_lite::escape(&c.to_string())),
            }
        }
        regex.push('$');
        let regex = regex_lite::Regex::new(&regex).map_err(|e| e.to_string())?;
        Ok(Pattern { source: source.to_owned(), fold_case, regex })
    }

    /// A regular expression searched anywhere in the text.
    pub fn regex(source: &str, fold_case: bool) -> Result<Pattern, String> {
        let text = if fold_case { format!("(?i){}", source.to_lowercase()) } else { source.to_owned() };
        let regex = regex_lite::Regex::new(&text).map_err(|e| format!("invalid regular expression: {e}"))?;
        Ok(Pattern { source: source.to_owned(), fold_case, regex })
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.fold_case {
            self.regex.is_match(&text.to_lowercase())
        } else {
            self.regex.is_match(text)
        }
    }
}

/// A datum's text, as the pattern and text-search operators read it
/// (SQLite converts a number to text for `LIKE`); `None` for NULL.
pub fn text_of(datum: &Datum<'_>) -> Option<String> {
    match datum {
        Datum::Null => None,
        Datum::Text(t) => Some(t.to_string()),
        Datum::Int(i) => Some(i.to_string()),
        Datum::Float(x) => Some(denorm_types::json::sqlite_float_text(*x)),
        Datum::Bool(b) => Some(b.to_string()),
        other => other.pg_text(),
    }
}

/// A parsed text-search query.
#[derive(Debug, Clone, PartialEq)]
pub enum Tsquery {
    /// A word; `prefix` for `word:*`.
    Word {
        word: String,
        prefix: bool,
    },
    /// Words at consecutive positions (`a <-> b`, a phrase).
    Phrase(Vec<String>),
    And(Box<Tsquery>, Box<Tsquery>),
    Or(Box<Tsquery>, Box<Tsquery>),
    Not(Box<Tsquery>),
    /// A query with no words (`plainto_tsquery('')`): matches nothing.
    Empty,
}

/// The `simple` configuration's words of `text`, in order.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

impl Tsquery {
    pub fn matches(&self, doc: &[String]) -> bool {
        match self {
            Tsquery::Word { word, prefix: false } => doc.iter().any(|w| w == word),
            Tsquery::Word { word, prefix: true } => doc.iter().any(|w| w.starts_with(word.as_str())),
            Tsquery::Phrase(phrase) => !phrase.is_empty() && doc.windows(phrase.len()).any(|w| w == phrase.as_slice()),
            Tsquery::And(a, b) => a.matches(doc) && b.matches(doc),
            Tsquery::Or(a, b) => a.matches(doc) || b.matches(doc),
            Tsquery::Not(a) => !a.matches(doc),
            Tsquery::Empty => false,
        }
    }

    fn and_all(parts: Vec<Tsquery>) -> Tsquery {
        parts.into_iter().reduce(|a, b| Tsquery::And(Box::new(a), Box::new(b))).unwrap_or(Tsquery::Empty)
    }

    fn phrase(ws: Vec<String>) -> Tsquery {
        match ws.len() {
            0 => Tsquery::Empty,
            1 => Tsquery::Word { word: ws.into_iter().next().unwrap_or_default(), prefix: false },
            _ => Tsquery::Phrase(ws),
        }
    }

    /// `plainto_tsquery`: every word.
    pub fn plain(text: &str) -> Tsquery {
        Tsquery::and_all(words(text).into_iter().map(|word| Tsquery::Word { word, prefix: false }).collect())
    }

    /// `phraseto_tsquery`: the words in sequence.
    pub fn phrase_of(text: &str) -> Tsquery {
        Tsquery::phrase(words(text))
    }

    /// `websearch_to_tsquery`: words ANDed, `"quoted phrases"`, `or`
    /// between terms, `-word` excluded.
    pub fn websearch(text: &str) -> Tsquery {
        let mut alternatives: Vec<Vec<Tsquery>> = vec![vec![]];
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c.is_whitespace() {
                rest = &rest[c.len_utf8()..];
            } else if c == '"' {
                let body = &rest[1..];
                let end = body.find('"').unwrap_or(body.len());
                alternatives.last_mut().unwrap_or(&mut vec![]).push(Tsquery::phrase(words(&body[..end])));
                rest = body.get(end + 1..).unwrap_or("");
            } else {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let token = &rest[..end];
                rest = &rest[end..];
                if token.eq_ignore_ascii_case("or") {
                    alternatives.push(vec![]);
                } else if let Some(negated) = token.strip_prefix('-') {
                    let term = Tsquery::phrase(words(negated));
                    if term != Tsquery::Empty {
                        alternatives.last_mut().unwrap_or(&mut vec![]).push(Tsquery::Not(Box::new(term)));
                    }
                } else {
                    let term = Tsquery::phrase(words(token));
                    if term != Tsquery::Empty {
                        alternatives.last_mut().unwrap_or(&mut vec![]).push(term);
                    }
                }
            }
        }
        alternatives
            .into_iter()
            .map(|terms| terms.into_iter().filter(|t| *t != Tsquery::Empty).collect::<Vec<_>>())
            .filter(|terms| !terms.is_empty())
            .map(Tsquery::and_all)
            .reduce(|a, b| Tsquery::Or(Box::new(a), Box::new(b)))
            .unwrap_or(Tsquery::Empty)
    }

    /// `to_tsquery`: words joined by `&`, `|`, `<->`, negated by `!`,
    /// grouped by parentheses, `word:*` a prefix.
    pub fn parse(text: &str) -> Result<Tsquery, String> {
        let tokens = ts_tokens(text)?;
        let mut parser = TsParser { tokens, at: 0 };
        let query = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(query),
            Some(t) => {
                Err(format!("syntax error in tsquery \"{text}\" at {t:?}; join words with & | <-> and group with ( )"))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TsToken {
    Word(String, bool),
    And,
    Or,
    Not,
    Follows,
    Open,
    Close,
}

fn ts_tokens(text: &str) -> Result<Vec<TsToken>, String> {
    let mut tokens = vec![];
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let (token, len) = match c {
            c if c.is_whitespace() => (None, c.len_utf8()),
            '&' => (Some(TsToken::And), 1),
            '|' => (Some(TsToken::Or), 1),
            '!' => (Some(TsToken::Not), 1),
            '(' => (Some(TsToken::Open), 1),
            ')' => (Some(TsToken::Close), 1),
            '<' if rest.starts_with("<->") => (Some(TsToken::Follows), 3),
            c if c.is_alphanumeric() => {
                let end = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
                let prefix = rest[end..].starts_with(":*");
                (Some(TsToken::Word(rest[..end].to_lowercase(), prefix)), end + if prefix { 2 } else { 0 })
            }
            other => return Err(format!("unexpected \"{other}\" in tsquery \"{text}\"")),
        };
        tokens.extend(token);
        rest = &rest[len..];
    }
    Ok(tokens)
}

struct TsParser {
    tokens: Vec<TsToken>,
    at: usize,
}

impl TsParser {
    fn eat(&mut self, token: &TsToken) -> bool {
        let hit = self.tokens.get(self.at) == Some(token);
        self.at += usize::from(hit);
        hit
    }

    fn or(&mut self) -> Result<Tsquery, String> {
        let mut left = self.and()?;
        while self.eat(&TsToken::Or) {
            left = Tsquery::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Tsquery, String> {
        let mut left = self.unary()?;
        loop {
            if self.eat(&TsToken::And) {
                left = Tsquery::And(Box::new(left), Box::new(self.unary()?));
            } else if self.eat(&TsToken::Follows) {
                let right = self.unary()?;
                left = match (left, right) {
                    (Tsquery::Word { word: a, prefix: false }, Tsquery::Word { word: b, prefix: false }) => {
                        Tsquery::Phrase(vec![a, b])
                    }
                    (Tsquery::Phrase(mut a), Tsquery::Word { word: b, prefix: false }) => {
                        a.push(b);
                        Tsquery::Phrase(a)
                    }
                    _ => return Err("<-> joins plain words only in denorm's text search".into()),
                };
            } else {
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Tsquery, String> {
        if self.eat(&TsToken::Not) {
            return Ok(Tsquery::Not(Box::new(self.unary()?)));
        }
        if self.eat(&TsToken::Open) {
            let inner = self.or()?;
            return if self.eat(&TsToken::Close) { Ok(inner) } else { Err("unbalanced parentheses in tsquery".into()) };
        }
        match self.tokens.get(self.at).cloned() {
            Some(TsToken::Word(word, prefix)) => {
                self.at += 1;
                Ok(Tsquery::Word { word, prefix })
            }
            other => {
                Err(format!("expected a word in tsquery, got {}", other.map_or("the end".into(), |t| format!("{t:?}"))))
            }
        }
    }
}

/// A `cs`/`cd`/`ov` operand: JSON, or a PostgreSQL array literal `{a,b}`
/// (elements that read as JSON numbers, `true`, `false` or `null` are
/// those, anything else a string).
pub fn parse_json_operand(raw: &str) -> Result<Json, String> {
    // `{}` is the empty array literal (what clients send for `[]`).
    if raw.trim() == "{}" {
        return Ok(Json::Array(vec![]));
    }
    if let Ok(json) = serde_json::from_str::<Json>(raw) {
        return Ok(json);
    }
    let inner = raw
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| format!("expected JSON or an array literal such as {{a,b}}, got \"{raw}\""))?;
    if inner.trim().is_empty() {
        return Ok(Json::Array(vec![]));
    }
    let items = crate::query::split_list(inner);
    Ok(Json::Array(
        items
            .into_iter()
            .map(|(item, quoted)| {
                let element = if quoted { None } else { serde_json::from_str::<Json>(item.trim()).ok() };
                element.filter(|j| !j.is_object() && !j.is_array() && !j.is_string()).unwrap_or(Json::String(item))
            })
            .collect(),
    ))
}

/// The JSON value of a datum for `cs`/`cd`/`ov`: JSON text parsed, other
/// scalars as themselves; `None` for NULL or text that is not JSON.
pub fn json_of(datum: &Datum<'_>) -> Option<Json> {
    match datum {
        Datum::Null => None,
        Datum::Text(t) => serde_json::from_str(t).ok(),
        Datum::Int(i) => Some(Json::from(*i)),
        Datum::Float(x) => serde_json::Number::from_f64(*x).map(Json::Number),
        Datum::Bool(b) => Some(Json::Bool(*b)),
        _ => None,
    }
}

fn scalar_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// jsonb's `a @> b`.
pub fn json_contains(a: &Json, b: &Json) -> bool {
    json_contains_at(a, b, true)
}

fn json_contains_at(a: &Json, b: &Json, top: bool) -> bool {
    match (a, b) {
        (Json::Object(a), Json::Object(b)) => {
            b.iter().all(|(k, bv)| a.get(k).is_some_and(|av| json_contains_at(av, bv, false)))
        }
        (Json::Array(a), Json::Array(b)) => b.iter().all(|bv| a.iter().any(|av| json_contains_at(av, bv, false))),
        // Only a top-level array contains a bare scalar.
        (Json::Array(a), b) if top && !b.is_object() => a.iter().any(|av| scalar_eq(av, b)),
        (Json::Object(_) | Json::Array(_), _) | (_, Json::Object(_) | Json::Array(_)) => false,
        (a, b) => scalar_eq(a, b),
    }
}

/// Arrays sharing an element (`&&`); scalars equal; objects sharing a
/// key with an equal value.
pub fn json_overlaps(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Array(a), Json::Array(b)) => a.iter().any(|x| b.iter().any(|y| x == y || scalar_eq(x, y))),
        (Json::Object(a), Json::Object(b)) => a.iter().any(|(k, v)| b.get(k).is_some_and(|w| v == w)),
        (Json::Array(a), b) | (b, Json::Array(a)) => a.iter().any(|x| scalar_eq(x, b)),
        (a, b) => scalar_eq(a, b),
    }
}

/// SQLite's truth of a value (`x IS TRUE`): a non-zero number; text by
/// its leading number.
pub fn sqlite_truth(datum: &Datum<'_>) -> Option<bool> {
    match datum {
        Datum::Null => None,
        Datum::Bool(b) => Some(*b),
        Datum::Int(i) => Some(*i != 0),
        Datum::Float(x) => Some(*x != 0.0),
        Datum::Text(t) => Some(leading_number(t) != 0.0),
        Datum::Numeric(_) => datum.pg_text().map(|t| leading_number(&t) != 0.0),
        _ => Some(false),
    }
}

fn leading_number(text: &str) -> f64 {
    let text = text.trim_start();
    (1..=text.len())
        .rev()
        .filter(|&end| text.is_char_boundary(end))
        .find_map(|end| text[..end].parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn like_patterns() {
        let like = |p: &str, t: &str| Pattern::like(p, false).unwrap().matches(t);
        let ilike = |p: &str, t: &str| Pattern::like(p, true).unwrap().matches(t);
        assert!(like("a%", "abc") && like("a*", "abc") && like("_b_", "abc") && like("%", ""));
        assert!(!like("a%", "Abc") && ilike("a%", "Abc") && ilike("ÄB%", "äbc"));
        assert!(like("100\\%", "100%") && !like("100\\%", "1000"));
        assert!(like("a.c", "a.c") && !like("a.c", "abc") && like("(x)%", "(x)y"));
        assert!(like("a%", "a\nb"));
        assert!(Pattern::like("x\\", false).is_err());
    }

    #[test]
    fn regex_search() {
        assert!(Pattern::regex("^a.c", false).unwrap().matches("abcd"));
        assert!(Pattern::regex("b+", false).unwrap().matches("abbc"));
        assert!(!Pattern::regex("B", false).unwrap().matches("abc"));
        assert!(Pattern::regex("B", true).unwrap().matches("abc"));
        assert!(Pattern::regex("(", false).is_err());
    }

    #[test]
    fn text_search_queries() {
        let doc = words("The quick brown Fox, jumps over the lazy dog 42");
        let fts = |q: &str| Tsquery::parse(q).unwrap().matches(&doc);
        assert!(fts("fox") && fts("FOX & dog") && fts("cat | dog") && !fts("cat") && fts("!cat"));
        assert!(fts("qui:*") && !fts("quo:*") && fts("quick <-> brown") && !fts("brown <-> quick"));
        assert!(fts("(cat | fox) & !(bird)") && fts("42"));
        assert!(
            Tsquery::parse("quick brown").is_err() && Tsquery::parse("(a").is_err() && Tsquery::parse("a &").is_err()
        );
        assert!(Tsquery::plain("Lazy, dog!").matches(&doc) && !Tsquery::plain("lazy cat").matches(&doc));
        assert!(Tsquery::phrase_of("lazy dog").matches(&doc) && !Tsquery::phrase_of("dog lazy").matches(&doc));
        assert!(!Tsquery::plain("").matches(&doc) && !Tsquery::plain("...").matches(&doc));
        let web = |q: &str| Tsquery::websearch(q).matches(&doc);
        assert!(web("\"quick brown\" fox") && !web("\"brown quick\""));
        assert!(web("cat or dog") && !web("cat or bird") && web("fox -cat") && !web("fox -dog"));
    }

    #[test]
    fn json_containment_like_jsonb() {
        let cs = |a, b| json_contains(&a, &b);
        assert!(cs(json!([1, 2, 3]), json!([3, 1])) && !cs(json!([1, 2]), json!([4])));
        assert!(cs(json!({"a": 1, "b": [1, 2]}), json!({"b": [2]})) && !cs(json!({"a": 1}), json!({"a": 2})));
        assert!(cs(json!(["a", "b"]), json!("a")) && !cs(json!([["a"]]), json!(["a"])));
        assert!(cs(json!([1.0]), json!([1])) && cs(json!("x"), json!("x")) && !cs(json!("x"), json!(["x"])));
        assert!(json_overlaps(&json!([1, 2]), &json!([2, 9])) && !json_overlaps(&json!([1]), &json!([2])));
        assert_eq!(parse_json_operand("{a,\"b,c\",3}").unwrap(), json!(["a", "b,c", 3]));
        assert_eq!(parse_json_operand("[1,\"x\"]").unwrap(), json!([1, "x"]));
        assert_eq!(parse_json_operand("{\"k\":1}").unwrap(), json!({"k": 1}));
        assert_eq!(parse_json_operand("{}").unwrap(), json!([]));
        assert!(parse_json_operand("nope").is_err());
    }

    #[test]
    fn sqlite_truth_of_values() {
        assert_eq!(sqlite_truth(&Datum::Int(2)), Some(true));
        assert_eq!(sqlite_truth(&Datum::Int(0)), Some(false));
        assert_eq!(sqlite_truth(&Datum::Float(0.5)), Some(true));
        assert_eq!(sqlite_truth(&Datum::text("1x")), Some(true));
        assert_eq!(sqlite_truth(&Datum::text("abc")), Some(false));
        assert_eq!(sqlite_truth(&Datum::Null), None);
    }
}
