//! Multiset comparison of query results with SQL's output normalization:
//! integers and doubles compare numerically, doubles to 1e-9 relative, NULL
//! equals NULL, row order does not matter (as in DataFusion's sqllogictest).
//! JSON columns compare as parsed JSON ([`normalize_json`]).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use denorm_types::{Datum, Value};

/// How two results differ.
#[derive(Debug)]
pub struct Mismatch {
    pub engine: Vec<Vec<Value>>,
    pub reference: Vec<Vec<Value>>,
    pub first_difference: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.first_difference)?;
        let show = |f: &mut fmt::Formatter<'_>, name: &str, rows: &[Vec<Value>]| {
            writeln!(f, "{name} ({} rows):", rows.len())?;
            for r in rows.iter().take(40) {
                let cells: Vec<String> = r.iter().map(ToString::to_string).collect();
                writeln!(f, "  ({})", cells.join(", "))?;
            }
            Ok(())
        };
        show(f, "engine", &self.engine)?;
        show(f, "reference", &self.reference)
    }
}

/// A sort key under which numerically equal values sort together: numbers
/// by 7 significant digits (doubles computed in another order may differ in
/// the last bits), then, for those holding an integer, by its exact value, so
/// that distinct integers never tie (a tie could pair rows differently in
/// the two lists).
fn sort_key(row: &[Value]) -> String {
    let number = |x: f64, exact: Option<i64>| match exact {
        Some(i) => format!("1:{x:+.6e}:{i:+020}"),
        None => format!("1:{x:+.6e}"),
    };
    let cells: Vec<String> = row
        .iter()
        .map(|v| match v {
            Datum::Null => "0:".to_string(),
            Datum::Bool(b) => number(f64::from(u8::from(*b)), Some(i64::from(*b))),
            Datum::Int(i) => number(*i as f64, Some(*i)),
            Datum::Float(x) => {
                let exact = (x.fract() == 0.0 && x.abs() < 9.2e18).then_some(*x as i64);
                // -0.0 sorts with 0 (SQLite may output either for one group).
                number(*x + 0.0, exact)
            }
            Datum::Text(t) => format!("2:{t}"),
            Datum::Blob(b) => format!("2~{b:?}"),
            other => format!("3:{}", other.pg_text().unwrap_or_default()),
        })
        .collect();
    cells.join("\u{1}")
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Datum::Int(x), Datum::Int(y)) => x == y,
        (Datum::Text(x), Datum::Text(y)) => x == y,
        (Datum::Blob(x), Datum::Blob(y)) => x == y,
        (Datum::Null, Datum::Null) => true,
        (Datum::Numeric(x), Datum::Numeric(y)) => x == y && x.scale() == y.scale(),
        (x, y) if x.pg_text().is_some() && y.pg_text().is_some() && !matches!(x, Datum::Numeric(_)) => x == y,
        (x, y) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        },
    }
}

/// Checks that `engine` and `reference` hold the same rows (as multisets).
pub fn same_rows(mut engine: Vec<Vec<Value>>, mut reference: Vec<Vec<Value>>) -> Result<(), Box<Mismatch>> {
    engine.sort_by_cached_key(|r| sort_key(r));
    reference.sort_by_cached_key(|r| sort_key(r));
    let difference = if engine.len() != reference.len() {
        Some(format!("engine has {} rows, reference has {}", engine.len(), reference.len()))
    } else {
        engine.iter().zip(&reference).find_map(|(e, r)| {
            let equal = e.len() == r.len() && e.iter().zip(r).all(|(a, b)| same_value(a, b));
            (!equal).then(|| format!("first differing row: engine {e:?} vs reference {r:?}"))
        })
    };
    match difference {
        None => Ok(()),
        Some(first_difference) => Err(Box::new(Mismatch { engine, reference, first_difference })),
    }
}

/// Parsed JSON that keeps an object's members as written, duplicates
/// included (SQLite's `json_group_object` may repeat a key).
#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Text equal for equal documents: object members sorted, numbers to 12
    /// significant digits (so `1`, `1.0` and SQLite's 17-digit doubles agree).
    fn canonical(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(x) => out.push_str(&format!("{x:.11e}")),
            Json::String(s) => out.push_str(&format!("{s:?}")),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.canonical(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                let mut texts: Vec<String> = members
                    .iter()
                    .map(|(k, v)| {
                        let mut text = format!("{k:?}:");
                        v.canonical(&mut text);
                        text
                    })
                    .collect();
                texts.sort();
                out.push('{');
                out.push_str(&texts.join(","));
                out.push('}');
            }
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Json, E> {
        Ok(Json::Number(i as f64))
    }
    fn visit_u64<E>(self, i: u64) -> Result<Json, E> {
        Ok(Json::Number(i as f64))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Json, E> {
        Ok(Json::Number(x))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Json>()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Canonical text of a JSON document (see [`normalize_json`]), or `None`
/// when `text` is not JSON.
pub fn canonical_json(text: &str) -> Option<String> {
    let parsed: Json = serde_json::from_str(text).ok()?;
    let mut out = String::new();
    parsed.canonical(&mut out);
    Some(out)
}

/// Replaces the JSON text in `columns` of every row by its canonical form,
/// so that documents compare as parsed JSON: object members in any order,
/// numbers by value. Text that does not parse is left as it is (and then
/// differs from the other side's canonical form).
pub fn normalize_json(rows: &mut [Vec<Value>], columns: &[usize]) {
    for row in rows {
        for &c in columns {
            if let Some(canonical) = row[c].as_str().and_then(canonical_json) {
                row[c] = Datum::owned_text(canonical);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_equal_to_seven_digits_still_pair_up() {
        // Every column of the two rows agrees to 7 significant digits.
        let (a, b) = (
            vec![Datum::Int(12_345_678), Datum::Int(99_999_991)],
            vec![Datum::Int(12_345_679), Datum::Int(99_999_990)],
        );
        assert!(same_rows(vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]).is_ok());
        let b_float = vec![Datum::Float(12_345_679.0), Datum::Float(99_999_990.0)];
        assert!(same_rows(vec![a.clone(), b], vec![b_float, a]).is_ok());
    }

    #[test]
    fn json_compares_parsed() {
        let same = [
            (r#"{"a":1,"b":[1.0,"x"]}"#, r#"{"b" : [1, "x"], "a" : 1.0}"#),
            (r#"[0.33333333333333332]"#, r#"[0.3333333333333333]"#),
            (r#"{"k":1,"k":2}"#, r#"{"k":2,"k":1}"#),
        ];
        for (a, b) in same {
            assert_eq!(canonical_json(a), canonical_json(b), "{a} vs {b}");
        }
        let different = [(r#"[1,2]"#, r#"[2,1]"#), (r#"{"k":1}"#, r#"{"k":1,"k":1}"#), (r#"["1"]"#, r#"[1]"#)];
        for (a, b) in different {
            assert_ne!(canonical_json(a), canonical_json(b), "{a} vs {b}");
        }
        let mut rows = vec![vec![Datum::Int(1), Value::from("[1.0]")], vec![Datum::Int(2), Datum::Null]];
        normalize_json(&mut rows, &[1]);
        assert_eq!(rows[0][1], Value::from(canonical_json("[1]").unwrap()));
        assert_eq!(rows[1][1], Datum::Null);
    }

    #[test]
    fn numbers_compare_numerically_and_order_is_ignored() {
        let a = vec![vec![Datum::Int(1), Value::from("x")], vec![Datum::Float(0.1 + 0.2), Datum::Null]];
        let b = vec![vec![Datum::Float(0.3), Datum::Null], vec![Datum::Float(1.0), Value::from("x")]];
        assert!(same_rows(a, b).is_ok());
        let c = vec![vec![Datum::Int(2)]];
        let d = vec![vec![Datum::Int(3)]];
        assert!(same_rows(c, d).is_err());
        assert!(same_rows(vec![vec![Datum::Null]], vec![vec![Datum::Int(0)]]).is_err());
        assert!(same_rows(vec![vec![Datum::Int(1)], vec![Datum::Int(1)]], vec![vec![Datum::Int(1)]]).is_err());
    }
}
