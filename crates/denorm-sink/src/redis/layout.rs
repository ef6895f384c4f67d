//! The Redis sink's key layout and value encoding: pure functions from a
//! view's rows to Redis keys, hash fields, JSON strings and sorted-set
//! members (no connection here; `redis.rs` sends what these build).
//!
//! ```text
//!  keyed view, format = "hash"   {prefix}{view}:{key}   hash  column → text (NULL: no field)
//!  keyed view, format = "json"   {prefix}{view}:{key}   string  the row as the HTTP API's JSON object
//!  feed view (partition_by)      {prefix}{view}:{partition}   sorted set  one member per row:
//!                                  score  = the first order_by column as a number (0 if not numeric)
//!                                  member = hex(order key, inverted) "|" the row's JSON object
//!  feed: celebrities' content    {prefix}{view}__celebrities:{author}   sorted set (Member::Celebrity)
//!  feed: celebrities followed     {prefix}{view}__edges:{partition}      sorted set (Member::Edge)
//!  positions                     {prefix}denorm:sink:positions   hash  view → position
//!  feeds                         {prefix}denorm:sink:feeds       hash  feed → retain, :page_script
//! ```
//!
//! **Keys.** The key columns' values, each encoded as text and joined with
//! `:`. A value is unambiguous within its column: integers in decimal;
//! doubles that are integral as the integer (`3.0` and `3` are one SQL key,
//! as everywhere in denorm), others in Rust's shortest round-trip form,
//! `NaN`/`Infinity`/`-Infinity`; numerics without trailing zeros (`1.50` →
//! `1.5`); text as it is with `\` and `:` escaped as `\\` and `\:`; booleans
//! `true`/`false`; dates, timestamps and UUIDs in the API's ISO 8601 /
//! canonical text (escaped: `2024-05-01T10\:00\:00`); NULL `\N`; a BLOB
//! `\x` and its hex digits. In a column that may hold both numbers and
//! text (SQLite's typeless `ScalarType::Any`, or an INTEGER/REAL column
//! holding text), a text value that would read as a number, a BLOB or a
//! tagged text (`42`, `NaN`, `\x00`, `'a`) is written after a `'` (`'42`),
//! in keys and hash fields alike, so a key never names two rows and a
//! field reads back as the value it was.
//!
//! **Hash fields** hold each non-NULL column's value as the HTTP API
//! renders it, a string's content unquoted: integers and numerics exact in
//! decimal (`1.50` keeps its scale), doubles as JSON numbers (`3.0`),
//! `NaN`/`Infinity`/`-Infinity`, text and JSON columns as their text,
//! booleans `true`/`false`, dates `2024-05-01`, timestamps
//! `2024-05-01T10:00:00.5` (with `+00:00` for timestamptz), UUIDs
//! canonical, BLOBs `\x00ff`. A NULL column has no field. A row whose every
//! column is NULL (a global `max()` over no rows) is one field with an empty
//! name and value, so that the row's key still exists.
//!
//! **Feeds.** A partition's sorted set is read newest first with one
//! `ZREVRANGE {view}:{partition} 0 N-1`. Redis orders a sorted set by
//! score, then by member bytes; the score is the first `order_by` column
//! as a double (negated for an ascending column; ±infinity for NULLs, as
//! the order places them; 0 for a column that is not a number, a date or a
//! timestamp — SQLite's text timestamps — whose order then lies in the
//! member alone), and the member starts with the row's *ordered key* (the
//! feed's own order-preserving encoding of every `order_by` column, the one
//! its HTTP reads merge by) with every byte inverted, in lower-case hex, so
//! that descending member order is the feed's order even for ties on the
//! score, several order columns and text columns. After `|` comes the row
//! as the HTTP API's JSON object. Rows tied on every `order_by` column come
//! in descending JSON text order (end `order_by` with a unique column, as
//! the view's reads need too). A partition is a set: a row the view holds
//! twice (an edge stored twice) is one member.

use denorm_serve::feed::FeedInfo;
use denorm_serve::json::write_cell;
use denorm_types::{numeric, pgtext, Datum, Row, RowPacker, ScalarType, Value};

/// How a keyed view's rows are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A hash per row, one field per non-NULL column.
    #[default]
    Hash,
    /// A string per row: the row's JSON object.
    Json,
}

/// Where and how one view's rows are written.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `{prefix}{view}:`, the start of every key of the view.
    key_start: String,
    format: Format,
    columns: Vec<(String, ScalarType)>,
    key: Vec<usize>,
    feed: Option<FeedInfo>,
    member: Member,
}

/// The shape of a feed layout's sorted-set members (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Member {
    /// `{order key hex}|{row JSON}`: a feed's fanned-out rows.
    #[default]
    Row,
    /// `{order key hex}|{start},{len}|{row JSON}`: a celebrity's content,
    /// `start`/`len` locating the partition column's value in the JSON
    /// (bytes, from 0) so that a reader can put its own partition there.
    Celebrity,
    /// `{len}|{fan key}{start},{len}|{edge JSON}`: a celebrity followed,
    /// `fan key` (of `len` bytes) naming its content's sorted set,
    /// `start`/`len` locating the follower's partition value in the JSON.
    Edge,
}

/// The field writes of an update (see [`Layout::hash_update`]).
#[derive(Debug, Default, PartialEq)]
pub struct HashUpdate<'s> {
    pub set: Vec<(&'s [u8], Vec<u8>)>,
    pub delete: Vec<&'s [u8]>,
}

/// Whether two values are the same value of the same type (so write the
/// same field): doubles by their bits.
fn same_datum(a: &Datum<'_>, b: &Datum<'_>) -> bool {
    match (a, b) {
        (Datum::Float(x), Datum::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// A JSON object's members in order, values unparsed.
struct RawObject<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de serde_json::value::RawValue>()? {
                    members.push(entry);
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The separator between the ordered key and the JSON of a feed member.
pub const MEMBER_SEPARATOR: u8 = b'|';

impl Layout {
    /// The layout of view `name` under `prefix`; `key` are the key columns'
    /// indexes (ignored for a feed, whose keys are its partitions).
    pub fn new(
        prefix: &str,
        name: &str,
        format: Format,
        columns: Vec<(String, ScalarType)>,
        key: Vec<usize>,
        feed: Option<FeedInfo>,
    ) -> Layout {
        Layout { key_start: format!("{prefix}{name}:"), format, columns, key, feed, member: Member::Row }
    }

    /// The same layout writing members of shape `member` (a feed's parts
    /// in Redis: `crate::feed`).
    pub fn with_member(mut self, member: Member) -> Layout {
        self.member = member;
        self
    }

    /// The positions hash of the sinks writing under `prefix`.
    pub fn positions_key(prefix: &str) -> String {
        format!("{prefix}denorm:sink:positions")
    }

    /// The hash of the feeds written under `prefix`: feed → `retain`, and
    /// the page script (`redis.rs`).
    pub fn feeds_key(prefix: &str) -> String {
        format!("{prefix}denorm:sink:feeds")
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn feed(&self) -> Option<&FeedInfo> {
        self.feed.as_ref()
    }

    /// The `SCAN MATCH` pattern of every key of the view (the view's name
    /// and prefix with glob characters escaped).
    pub fn scan_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.key_start.len() + 1);
        for c in self.key_start.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }

    /// Whether `key` is one of the view's keys (a `SCAN MATCH` may also
    /// return another view's keys whose name starts with this one's
    /// followed by `:`; none can, as names hold no `:`, but be exact).
    pub fn owns(&self, key: &[u8]) -> bool {
        key.starts_with(self.key_start.as_bytes())
    }

    /// The key of a row: the row's key columns (a feed: its partition).
    pub fn row_key(&self, row: &Row) -> Vec<u8> {
        let mut out = self.key_start.clone().into_bytes();
        let columns: &[usize] = match &self.feed {
            Some(feed) => std::slice::from_ref(&feed.partition),
            None => &self.key,
        };
        for (i, &column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b':');
            }
            encode_key_value(&mut out, &row.get(column), self.columns[column].1);
        }
        out
    }

    /// The key of the row whose key columns hold `key` (the key columns'
    /// values packed in order); `None` for a feed.
    pub fn key_of(&self, key: &Row) -> Option<Vec<u8>> {
        if self.feed.is_some() {
            return None;
        }
        let mut out = self.key_start.clone().into_bytes();
        for (i, (datum, &column)) in key.iter().zip(&self.key).enumerate() {
            if i > 0 {
                out.push(b':');
            }
            encode_key_value(&mut out, &datum, self.columns[column].1);
        }
        Some(out)
    }

    /// The fields of a row's hash (see the module documentation).
    pub fn hash_fields<'s>(&'s self, row: &Row) -> Vec<(&'s [u8], Vec<u8>)> {
        let mut fields: Vec<(&[u8], Vec<u8>)> = row
            .iter()
            .zip(&self.columns)
            .filter_map(|(datum, (name, ty))| field_value(&datum, *ty).map(|value| (name.as_bytes(), value)))
            .collect();
        if fields.is_empty() {
            fields.push((b"", Vec::new()));
        }
        fields
    }

    /// The writes that turn row `old`'s hash into row `new`'s: the fields
    /// to set (columns whose value changed and is not NULL) and the fields
    /// to delete (columns now NULL). Only the changed columns are encoded:
    /// an update of one column is one field. `None` when either row is all
    /// NULL (its hash is the marker field; the caller diffs
    /// [`Layout::hash_fields`]).
    pub fn hash_update<'s>(&'s self, old: &Row, new: &Row) -> Option<HashUpdate<'s>> {
        if old.iter().all(|d| d.is_null()) || new.iter().all(|d| d.is_null()) {
            return None;
        }
        let mut update = HashUpdate::default();
        for ((before, after), (name, ty)) in old.iter().zip(new.iter()).zip(&self.columns) {
            if same_datum(&before, &after) {
                continue;
            }
            match field_value(&after, *ty) {
                Some(value) => update.set.push((name.as_bytes(), value)),
                None => update.delete.push(name.as_bytes()),
            }
        }
        Some(update)
    }

    /// The row as the HTTP API's JSON object.
    pub fn json(&self, row: &Row) -> Vec<u8> {
        self.json_locating(row, usize::MAX).0
    }

    /// A feed row's sorted-set score and member (see the module
    /// documentation). `None` for a view that is not a feed.
    pub fn feed_entry(&self, row: &Row) -> Option<(f64, Vec<u8>)> {
        let feed = self.feed.as_ref()?;
        let ordered = feed.row_key(row);
        let mut prefix = RowPacker::new();
        prefix.push_key(&row.get(feed.partition));
        let skip = prefix.finish().as_bytes().len();
        let suffix = ordered.get(skip..).unwrap_or_default();
        let mut member = Vec::with_capacity(2 * suffix.len() + 64);
        let (json, at) = self.json_locating(row, feed.partition);
        match self.member {
            Member::Row | Member::Celebrity => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for &b in suffix {
                    let b = !b;
                    member.push(HEX[usize::from(b >> 4)]);
                    member.push(HEX[usize::from(b & 15)]);
                }
                member.push(MEMBER_SEPARATOR);
                if self.member == Member::Celebrity {
                    member.extend_from_slice(format!("{},{}", at.start, at.len()).as_bytes());
                    member.push(MEMBER_SEPARATOR);
                }
            }
            Member::Edge => {
                let fan = feed.order.first().map_or(feed.partition, |t| t.column);
                let mut key = Vec::new();
                encode_key_value(&mut key, &row.get(fan), self.columns[fan].1);
                member.extend_from_slice(key.len().to_string().as_bytes());
                member.push(MEMBER_SEPARATOR);
                member.extend_from_slice(&key);
                member.extend_from_slice(format!("{},{}", at.start, at.len()).as_bytes());
                member.push(MEMBER_SEPARATOR);
            }
        }
        member.extend_from_slice(&json);
        Some((self.feed_score(feed, row), member))
    }

    /// The row's JSON object and where column `column`'s value lies in it.
    fn json_locating(&self, row: &Row, column: usize) -> (Vec<u8>, std::ops::Range<usize>) {
        let mut out = Vec::with_capacity(16 * self.columns.len() + 2);
        let mut at = 0..0;
        out.push(b'{');
        for (i, (datum, (name, ty))) in row.iter().zip(&self.columns).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, name).expect("writing a string into memory cannot fail");
            out.push(b':');
            let start = out.len();
            write_cell(&mut out, &datum, *ty);
            if i == column {
                at = start..out.len();
            }
        }
        out.push(b'}');
        (out, at)
    }

    /// A row read back from its hash; `None` when the hash is not one this
    /// layout writes (a field of no column, a value not of its column's
    /// type: someone edited it).
    pub fn decode_hash(&self, fields: &[(Vec<u8>, Vec<u8>)]) -> Option<Row> {
        let mut values = vec![Datum::Null; self.columns.len()];
        for (name, value) in fields {
            if name.is_empty() && value.is_empty() && fields.len() == 1 {
                continue;
            }
            let column = self.columns.iter().position(|(c, _)| c.as_bytes() == name.as_slice())?;
            values[column] = decode_field(value, self.columns[column].1)?;
        }
        Some(Row::pack(values.iter()))
    }

    /// A row read back from its JSON object (format `json`, or the JSON of
    /// a feed member); `None` when it is not one this layout writes.
    pub fn decode_json(&self, json: &[u8]) -> Option<Row> {
        let object = serde_json::from_slice::<RawObject<'_>>(json).ok()?.0;
        if object.len() != self.columns.len() {
            return None;
        }
        let mut values = Vec::with_capacity(self.columns.len());
        for ((name, raw), (column, ty)) in object.iter().zip(&self.columns) {
            if name != column {
                return None;
            }
            values.push(decode_json_value(raw.get(), *ty)?);
        }
        Some(Row::pack(values.iter()))
    }

    /// A feed row read back from its sorted-set member.
    pub fn decode_member(&self, member: &[u8]) -> Option<Row> {
        let at = member.iter().position(|&b| b == MEMBER_SEPARATOR)?;
        let rest = &member[at + 1..];
        match self.member {
            Member::Row => self.decode_json(rest),
            Member::Celebrity => {
                let next = rest.iter().position(|&b| b == MEMBER_SEPARATOR)?;
                self.decode_json(&rest[next + 1..])
            }
            Member::Edge => {
                let len: usize = std::str::from_utf8(&member[..at]).ok()?.parse().ok()?;
                let rest = rest.get(len..)?;
                let next = rest.iter().position(|&b| b == MEMBER_SEPARATOR)?;
                self.decode_json(&rest[next + 1..])
            }
        }
    }

    fn feed_score(&self, feed: &FeedInfo, row: &Row) -> f64 {
        let Some(first) = feed.order.first() else { return 0.0 };
        let datum = row.get(first.column);
        let value = match datum {
            // NULLs first in the feed's order: above every score.
            Datum::Null => return if first.nulls_first { f64::INFINITY } else { f64::NEG_INFINITY },
            _ => match score_of(&datum, self.columns[first.column].1) {
                Some(x) => x,
                None => return 0.0,
            },
        };
        let score = if first.descending { value } else { -value };
        if score == 0.0 {
            0.0
        } else {
            score
        }
    }
}

/// A value's score: a monotonic (not always injective) map of the
/// column's order (`Datum::total_cmp`: booleans and NaN below numbers,
/// text and BLOBs above) to doubles, for the columns typed as numbers or
/// instants. `None` for other columns: every row scores 0 and the member
/// alone orders them.
fn score_of(datum: &Datum<'_>, ty: ScalarType) -> Option<f64> {
    let x = match (ty, datum) {
        (ScalarType::Int | ScalarType::Float | ScalarType::Numeric, value) => match value {
            Datum::Int(i) => *i as f64,
            Datum::Float(x) if x.is_nan() => f64::NEG_INFINITY,
            Datum::Float(x) => *x,
            Datum::Numeric(n) => n.to_string().parse().ok()?,
            Datum::Bool(_) => f64::NEG_INFINITY,
            // A SQLite INTEGER/REAL column may hold text or a BLOB: above
            // every number.
            _ => f64::INFINITY,
        },
        (ScalarType::Date, Datum::Date(d)) => f64::from(*d) * 86_400.0,
        (ScalarType::Timestamp | ScalarType::TimestampTz, Datum::Timestamp(t) | Datum::TimestampTz(t)) => {
            *t as f64 / 1e6
        }
        _ => return None,
    };
    Some(x)
}

/// Appends one key column's value (see the module documentation).
pub fn encode_key_value(out: &mut Vec<u8>, datum: &Datum<'_>, ty: ScalarType) {
    match datum {
        Datum::Null => out.extend_from_slice(b"\\N"),
        Datum::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Datum::Float(x) => out.extend_from_slice(float_key(*x).as_bytes()),
        Datum::Numeric(n) => {
            let n = n.normalize();
            out.extend_from_slice(n.to_string().as_bytes())
        }
        Datum::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Datum::Text(t) => {
            if needs_tag(t, ty) {
                out.push(b'\'');
            }
            escape(out, t.as_bytes());
        }
        Datum::Blob(b) => {
            out.extend_from_slice(b"\\x");
            let mut hex = String::with_capacity(2 * b.len());
            denorm_types::json::write_hex(&mut hex, b);
            out.extend_from_slice(hex.as_bytes());
        }
        Datum::Date(_) | Datum::Timestamp(_) | Datum::TimestampTz(_) | Datum::Uuid(_) => {
            let text = field_value(datum, ty).unwrap_or_default();
            escape(out, &text);
        }
        // Equal intervals ('1 day', '24 hours') name one key.
        Datum::Interval(i) => escape(out, denorm_types::interval::to_string(i.key_form()).as_bytes()),
    }
}

fn float_key(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else if x.fract() == 0.0 && x.abs() < 9.2e18 {
        // Integral: the integer (SQL equality: 3.0 = 3; -0.0 = 0).
        (x as i64).to_string()
    } else {
        format!("{x}")
    }
}

fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'\\' || b == b':' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Whether text `t` in a column of type `ty` must be tagged with a leading
/// `'`: the column may hold numbers too, and the untagged text would read
/// back as something else.
fn needs_tag(t: &str, ty: ScalarType) -> bool {
    matches!(ty, ScalarType::Int | ScalarType::Float | ScalarType::Any)
        && !matches!(guess(t.as_bytes()), Some(Datum::Text(ref r)) if r == t)
}

/// Reads a hash field of a column that may hold numbers and text: the
/// inverse of [`field_value`] for those columns.
fn guess(bytes: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(bytes).ok();
    if let Some(rest) = bytes.strip_prefix(b"'") {
        return Some(Datum::owned_text(std::str::from_utf8(rest).ok()?));
    }
    if let Some(hex) = bytes.strip_prefix(b"\\x") {
        if let Some(blob) = unhex(hex) {
            return Some(Datum::Blob(blob.into()));
        }
    }
    let Some(text) = text else { return Some(Datum::Blob(bytes.to_vec().into())) };
    if let Ok(i) = text.parse::<i64>() {
        return Some(Datum::Int(i));
    }
    match text {
        "NaN" => return Some(Datum::Float(f64::NAN)),
        "Infinity" => return Some(Datum::Float(f64::INFINITY)),
        "-Infinity" => return Some(Datum::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    let numeric = !text.is_empty()
        && text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if numeric {
        if let Ok(x) = text.parse::<f64>() {
            return Some(Datum::Float(x));
        }
    }
    Some(Datum::owned_text(text))
}

fn unhex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    hex.chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

/// A hash field's value read back by its column's type; `None` when it is
/// not a value of the column (someone wrote the field by hand).
pub fn decode_field(bytes: &[u8], ty: ScalarType) -> Option<Value> {
    match ty {
        ScalarType::Int | ScalarType::Float | ScalarType::Any => guess(bytes),
        ScalarType::Text | ScalarType::Json => Some(Datum::owned_text(std::str::from_utf8(bytes).ok()?)),
        ScalarType::Bool => match bytes {
            b"true" => Some(Datum::Bool(true)),
            b"false" => Some(Datum::Bool(false)),
            _ => None,
        },
        ScalarType::Numeric
        | ScalarType::Date
        | ScalarType::Timestamp
        | ScalarType::TimestampTz
        | ScalarType::Uuid
        | ScalarType::Interval => pgtext::parse(ty, std::str::from_utf8(bytes).ok()?)?.ok(),
        ScalarType::Null | ScalarType::Unsupported => None,
    }
}

/// A JSON value of a row object read back by its column's type.
fn decode_json_value(raw: &str, ty: ScalarType) -> Option<Value> {
    if raw == "null" {
        return Some(Datum::Null);
    }
    match ty {
        ScalarType::Json => return Some(Datum::owned_text(raw)),
        ScalarType::Bool => return serde_json::from_str::<bool>(raw).ok().map(Datum::Bool),
        _ => {}
    }
    if raw.starts_with('"') {
        let text: String = serde_json::from_str(raw).ok()?;
        return match ty {
            ScalarType::Text => Some(Datum::owned_text(text)),
            ScalarType::Numeric
            | ScalarType::Date
            | ScalarType::Timestamp
            | ScalarType::TimestampTz
            | ScalarType::Uuid => pgtext::parse(ty, &text)?.ok(),
            // The API renders a BLOB as bytea hex text.
            _ => match text.strip_prefix("\\x").and_then(|hex| unhex(hex.as_bytes())) {
                Some(blob) if ty == ScalarType::Any => Some(Datum::Blob(blob.into())),
                _ => Some(Datum::owned_text(text)),
            },
        };
    }
    match ty {
        ScalarType::Numeric => numeric::parse(raw).ok().map(Datum::Numeric),
        _ if raw.contains(['.', 'e', 'E']) => raw.parse::<f64>().ok().map(Datum::Float),
        _ => match raw.parse::<i64>() {
            Ok(i) => Some(Datum::Int(i)),
            Err(_) => raw.parse::<f64>().ok().map(Datum::Float),
        },
    }
}

/// A column's value in a hash field; `None` for NULL.
pub fn field_value(datum: &Datum<'_>, ty: ScalarType) -> Option<Vec<u8>> {
    match datum {
        Datum::Null => None,
        Datum::Text(t) if needs_tag(t, ty) => Some([b"'", t.as_bytes()].concat()),
        Datum::Text(t) => Some(t.as_bytes().to_vec()),
        Datum::Float(x) if !x.is_finite() => Some(float_key(*x).into_bytes()),
        _ => {
            let mut out = Vec::new();
            write_cell(&mut out, datum, ty);
            // A JSON string (date, timestamp, UUID, BLOB): its content.
            if out.first() == Some(&b'"') {
                let text: String = serde_json::from_slice(&out).ok()?;
                return Some(text.into_bytes());
            }
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_serve::query::OrderTerm;
    use rust_decimal::Decimal;

    fn layout(types: &[ScalarType], key: Vec<usize>) -> Layout {
        let columns = types.iter().enumerate().map(|(i, ty)| (format!("c{i}"), *ty)).collect();
        Layout::new("app:", "v", Format::Hash, columns, key, None)
    }

    fn key_of(types: &[ScalarType], key: Vec<usize>, values: Vec<Datum<'static>>) -> String {
        String::from_utf8(layout(types, key).row_key(&Row::pack(values.iter()))).unwrap()
    }

    #[test]
    fn keys_are_readable_and_unambiguous() {
        use ScalarType::*;
        let cases: Vec<(Vec<ScalarType>, Vec<Datum<'static>>, &str)> = vec![
            (vec![Int], vec![Datum::Int(42)], "app:v:42"),
            (vec![Text, Int], vec![Datum::text("a:b\\c"), Datum::Int(-1)], "app:v:a\\:b\\\\c:-1"),
            (vec![Float], vec![Datum::Float(3.0)], "app:v:3"),
            (vec![Float], vec![Datum::Float(-0.0)], "app:v:0"),
            (vec![Float], vec![Datum::Float(2.5)], "app:v:2.5"),
            (vec![Numeric], vec![Datum::Numeric(Decimal::new(150, 2))], "app:v:1.5"),
            (vec![Int, Text], vec![Datum::Null, Datum::text("")], "app:v:\\N:"),
            (vec![Text], vec![Datum::text("\\N")], "app:v:\\\\N"),
            (vec![Any], vec![Datum::text("42")], "app:v:'42"),
            (vec![Any], vec![Datum::Int(42)], "app:v:42"),
            (vec![Any], vec![Datum::Blob(vec![0, 255].into())], "app:v:\\x00ff"),
            (vec![Timestamp], vec![Datum::Timestamp(1_714_557_600_500_000)], "app:v:2024-05-01T10\\:00\\:00.5"),
        ];
        for (types, values, expected) in cases {
            let n = types.len();
            assert_eq!(key_of(&types, (0..n).collect(), values.clone()), expected, "{values:?}");
        }
    }

    #[test]
    fn distinct_keys_never_share_a_key_string() {
        // Pairs that a naive join (`:` without escaping, no tag for typeless
        // text) would confuse.
        use ScalarType::*;
        let pairs: Vec<(Vec<ScalarType>, Vec<Datum<'static>>, Vec<Datum<'static>>)> = vec![
            (vec![Text, Text], vec![Datum::text("a:b"), Datum::text("c")], vec![Datum::text("a"), Datum::text("b:c")]),
            (vec![Any], vec![Datum::text("42")], vec![Datum::Int(42)]),
            (vec![Text], vec![Datum::text("\\N")], vec![Datum::Null]),
            (vec![Text, Text], vec![Datum::text("a\\"), Datum::text("b")], vec![Datum::text("a\\:b"), Datum::text("")]),
        ];
        for (types, a, b) in pairs {
            let n = types.len();
            assert_ne!(key_of(&types, (0..n).collect(), a), key_of(&types, (0..n).collect(), b));
        }
    }

    #[test]
    fn hash_fields_render_values_as_the_api_and_skip_nulls() {
        use ScalarType::*;
        let layout = layout(&[Int, Float, Text, Numeric, Date, Uuid, Int, Bool, Any], vec![0]);
        let row = Row::pack(
            [
                Datum::Int(7),
                Datum::Float(3.0),
                Datum::text("héllo"),
                Datum::Numeric(Decimal::new(150, 2)),
                Datum::Date(19_844),
                Datum::Uuid([0xa0; 16]),
                Datum::Null,
                Datum::Bool(true),
                Datum::Blob(vec![1, 2].into()),
            ]
            .iter(),
        );
        let fields: Vec<(String, String)> = layout
            .hash_fields(&row)
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        let expected = [
            ("c0", "7"),
            ("c1", "3.0"),
            ("c2", "héllo"),
            ("c3", "1.50"),
            ("c4", "2024-05-01"),
            ("c5", "a0a0a0a0-a0a0-a0a0-a0a0-a0a0a0a0a0a0"),
            ("c7", "true"),
            ("c8", "\\x0102"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(fields, expected);
        let nulls = Row::pack([Datum::Null, Datum::Null].iter());
        assert_eq!(layout.hash_fields(&nulls), vec![(&b""[..], Vec::new())]);
    }

    #[test]
    fn json_is_the_api_row() {
        use ScalarType::*;
        let layout = layout(&[Int, Text, Json, Float], vec![0]);
        let row = Row::pack([Datum::Int(1), Datum::text("a\"b"), Datum::text("[1,2]"), Datum::Null].iter());
        assert_eq!(String::from_utf8(layout.json(&row)).unwrap(), r#"{"c0":1,"c1":"a\"b","c2":[1,2],"c3":null}"#);
    }

    fn feed_layout(order: Vec<OrderTerm>, types: &[ScalarType]) -> Layout {
        let columns = types.iter().enumerate().map(|(i, ty)| (format!("c{i}"), *ty)).collect();
        let feed =
            FeedInfo { partition: 0, order, retain: None, fanout_limit: 1000, fan_column: "f".into(), reference: None };
        Layout::new("", "feed", Format::Hash, columns, vec![0, 1, 2], Some(feed))
    }

    /// Sorts entries as Redis's ZREVRANGE returns them: score descending,
    /// then member bytes descending.
    fn zrevrange(mut entries: Vec<(f64, Vec<u8>)>) -> Vec<(f64, Vec<u8>)> {
        entries.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        entries
    }

    #[test]
    fn zrevrange_of_feed_members_is_the_feed_order() {
        use ScalarType::*;
        let desc = |column| OrderTerm { column, descending: true, nulls_first: true, collation: None };
        let asc = |column| OrderTerm { column, descending: false, nulls_first: false, collation: None };
        // order_by = c1 DESC (text timestamps: score 0), c2 ASC.
        let layout = feed_layout(vec![desc(1), asc(2)], &[Int, Text, Int]);
        let rows: Vec<(Option<&str>, i64)> = vec![
            (Some("2024-01-02"), 5),
            (Some("2024-01-02"), 3),
            (Some("2024-01-01"), 9),
            (None, 1),
            (Some("2024-01-03"), 100),
        ];
        let entries = rows
            .iter()
            .map(|(t, id)| {
                let t = t.map_or(Datum::Null, Datum::text);
                layout.feed_entry(&Row::pack([Datum::Int(1), t, Datum::Int(*id)].iter())).unwrap()
            })
            .collect();
        let ids: Vec<String> = zrevrange(entries)
            .into_iter()
            .map(|(_, m)| {
                let json = &m[m.iter().position(|&b| b == MEMBER_SEPARATOR).unwrap() + 1..];
                let value: serde_json::Value = serde_json::from_slice(json).unwrap();
                value["c2"].to_string()
            })
            .collect();
        // NULLs first (DESC's default), then newest first, ties by c2 ascending.
        assert_eq!(ids, ["1", "100", "3", "5", "9"]);
    }

    #[test]
    fn numeric_scores_order_as_the_members() {
        use ScalarType::*;
        // order_by = c1 ASC (a double: the score carries it), c2 DESC.
        let layout = feed_layout(
            vec![
                OrderTerm { column: 1, descending: false, nulls_first: false, collation: None },
                OrderTerm { column: 2, descending: true, nulls_first: true, collation: None },
            ],
            &[Int, Float, Int],
        );
        let rows = [(2.5, 1), (-1.0, 2), (2.5, 3), (f64::NAN, 4), (10.0, 5)];
        let entries: Vec<(f64, Vec<u8>)> = rows
            .iter()
            .map(|(x, id)| {
                layout.feed_entry(&Row::pack([Datum::Int(1), Datum::Float(*x), Datum::Int(*id)].iter())).unwrap()
            })
            .collect();
        let sorted = zrevrange(entries.clone());
        // By member bytes alone, descending: the exact feed order.
        let mut by_member = entries;
        by_member.sort_by(|a, b| b.1.cmp(&a.1));
        assert_eq!(sorted.iter().map(|e| &e.1).collect::<Vec<_>>(), by_member.iter().map(|e| &e.1).collect::<Vec<_>>());
        // NaN is below every number (first in ASC), then -1.0 (score 1.0).
        assert_eq!(sorted.iter().map(|e| e.0).collect::<Vec<_>>(), [f64::INFINITY, 1.0, -2.5, -2.5, -10.0]);
    }

    fn small_datum() -> impl proptest::strategy::Strategy<Value = Datum<'static>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Datum::Null),
            (0i64..3).prop_map(Datum::Int),
            prop_oneof![Just(0.0), Just(-0.0), Just(1.5), Just(f64::NAN)].prop_map(Datum::Float),
            "[a1]{0,2}".prop_map(Datum::owned_text),
        ]
    }

    proptest::proptest! {
        /// `hash_update` writes exactly the difference of the two rows'
        /// `hash_fields` (the full encoding it replaces on the update path).
        #[test]
        fn hash_update_is_the_difference_of_the_hashes(
            old in proptest::collection::vec(small_datum(), 3),
            new in proptest::collection::vec(small_datum(), 3),
        ) {
            use ScalarType::*;
            let layout = layout(&[Int, Float, Any], vec![0]);
            let (old, new) = (Row::pack(old.iter()), Row::pack(new.iter()));
            let before = layout.hash_fields(&old);
            let after = layout.hash_fields(&new);
            match layout.hash_update(&old, &new) {
                None => proptest::prop_assert!(old.iter().all(|d| d.is_null()) || new.iter().all(|d| d.is_null())),
                Some(update) => {
                    // Applying the update to the old hash gives the new hash.
                    let mut hash: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
                        before.into_iter().map(|(k, v)| (k.to_vec(), v)).collect();
                    for name in &update.delete {
                        proptest::prop_assert!(hash.remove(*name).is_some());
                    }
                    for (name, value) in &update.set {
                        hash.insert(name.to_vec(), value.clone());
                    }
                    let expected: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
                        after.into_iter().map(|(k, v)| (k.to_vec(), v)).collect();
                    proptest::prop_assert_eq!(hash, expected);
                }
            }
        }
    }

    #[test]
    fn celebrity_and_edge_members_locate_the_partition_and_read_back() {
        use ScalarType::{Int, Text};
        let term = |column| OrderTerm { column, descending: true, nulls_first: true, collation: None };
        let celebrity = feed_layout(vec![term(1)], &[Text, Int, Text]).with_member(Member::Celebrity);
        let row = Row::pack([Datum::text("a:b|c"), Datum::Int(7), Datum::text("x|y")].iter());
        let (_, member) = celebrity.feed_entry(&row).unwrap();
        let member = String::from_utf8(member).unwrap();
        let (hex, rest) = member.split_once('|').unwrap();
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        let (at, json) = rest.split_once('|').unwrap();
        let (start, len) = at.split_once(',').unwrap();
        let (start, len): (usize, usize) = (start.parse().unwrap(), len.parse().unwrap());
        assert_eq!(&json[start..start + len], "\"a:b|c\"");
        assert_eq!(celebrity.decode_member(member.as_bytes()), Some(row));
        // An edge: the fan key's length, the key, the partition's place, the JSON.
        let asc = OrderTerm { column: 1, descending: false, nulls_first: false, collation: None };
        let edge = feed_layout(vec![asc], &[Text, Text]).with_member(Member::Edge);
        let row = Row::pack([Datum::text("r"), Datum::text("f:1|2")].iter());
        let (_, member) = edge.feed_entry(&row).unwrap();
        assert_eq!(String::from_utf8(member.clone()).unwrap(), "6|f\\:1|26,3|{\"c0\":\"r\",\"c1\":\"f:1|2\"}");
        assert_eq!(edge.decode_member(&member), Some(row));
    }
}
