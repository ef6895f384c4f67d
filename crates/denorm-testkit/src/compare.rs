//! Multiset comparison of query results with SQL's output normalization:
//! integers and doubles compare numerically, doubles to 1e-9 relative, NULL
//! equals NULL, row order does not matter (as in DataFusion's sqllogictest).

use std::fmt;

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

/// A sort key under which numerically equal values sort together.
fn sort_key(row: &[Value]) -> String {
    let cells: Vec<String> = row
        .iter()
        .map(|v| match v {
            Datum::Null => "0:".to_string(),
            Datum::Bool(b) => format!("1:{:+.6e}", f64::from(u8::from(*b))),
            Datum::Int(i) => format!("1:{:+.6e}", *i as f64),
            Datum::Float(x) => format!("1:{x:+.6e}"),
            Datum::Text(t) => format!("2:{t}"),
        })
        .collect();
    cells.join("\u{1}")
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Datum::Int(x), Datum::Int(y)) => x == y,
        (Datum::Text(x), Datum::Text(y)) => x == y,
        (Datum::Null, Datum::Null) => true,
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

#[cfg(test)]
mod tests {
    use super::*;

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
