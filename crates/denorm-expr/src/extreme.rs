//! MIN/MAX of text under a SQLite collation that show a row's value.
//!
//! SQLite's `min(city)` over a `COLLATE NOCASE` column compares under the
//! collation and returns the value of a row, not its key: among values that
//! tie under the collation, the first its scan meets, which no incremental
//! state can know. denorm returns the tie's least value bytewise, for MIN and
//! for MAX alike (the value a `GROUP BY city` column shows for the group of
//! those values, so one row's columns agree), through one text the core's
//! MIN/MAX order bytewise: [`encode`] writes the collation key escaped
//! (order-preserving, NUL-terminated), then the value itself — escaped the
//! same way for MIN, so the least value of the least key sorts first; for
//! MAX its bytes complemented as two letters each and closed by `~`, so that
//! among the values of the greatest key the least sorts last. [`decode`]
//! gives the value back. Values other than text are left as they are (SQLite
//! orders numbers before text under every collation).

use std::borrow::Cow;

use denorm_types::{Collation, Datum};

/// The text MIN (`max` false) or MAX (`max` true) compares for `value`.
pub fn encode<'a>(value: Datum<'a>, collation: Collation, max: bool) -> Datum<'a> {
    let Datum::Text(t) = value else { return value };
    let key = collation.key(&t);
    let mut out = Vec::with_capacity(key.len() + 2 * t.len() + 2);
    escape(key.as_bytes(), &mut out);
    out.push(0);
    if max {
        for b in t.bytes().map(|b| !b) {
            out.push(b'A' + (b >> 4));
            out.push(b'A' + (b & 15));
        }
        out.push(b'~');
    } else {
        escape(t.as_bytes(), &mut out);
    }
    // Only ASCII bytes were added to (or put in place of) UTF-8 text.
    Datum::Text(Cow::Owned(String::from_utf8(out).unwrap_or_default()))
}

/// The value [`encode`] wrote into `encoded`; other values as they are.
pub fn decode(encoded: Datum<'_>, max: bool) -> Datum<'_> {
    let Datum::Text(t) = encoded else { return encoded };
    let bytes = t.as_bytes();
    let mut at = 0;
    while at < bytes.len() && bytes[at] != 0 {
        at += if bytes[at] == 1 { 2 } else { 1 };
    }
    let tail = bytes.get(at + 1..).unwrap_or_default();
    let value = match max {
        true => tail
            .chunks_exact(2)
            .take_while(|pair| pair[0] != b'~')
            .map(|pair| !((pair[0].wrapping_sub(b'A') << 4) | (pair[1].wrapping_sub(b'A') & 15)))
            .collect(),
        false => unescape(tail),
    };
    Datum::Text(Cow::Owned(String::from_utf8(value).unwrap_or_default()))
}

/// Order-preserving escape: NUL → 1 1, 1 → 1 2, so a NUL ends the text.
fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            0 | 1 => out.extend_from_slice(&[1, b + 1]),
            b => out.push(b),
        }
    }
}

fn unescape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        match b {
            1 => out.push(it.next().map_or(0, |n| n.saturating_sub(1))),
            b => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(s: &str) -> Datum<'static> {
        Datum::Text(Cow::Owned(s.to_string()))
    }

    /// The extreme by (key, bytes) — MIN the least pair, MAX the greatest
    /// key's least value — computed directly, beside the encoded order.
    fn direct(values: &[String], c: Collation, max: bool) -> String {
        let key = |v: &String| c.key(v).into_owned();
        let best = match max {
            true => values.iter().map(key).max(),
            false => values.iter().map(key).min(),
        }
        .unwrap();
        values.iter().filter(|v| key(v) == best).min().unwrap().clone()
    }

    proptest! {
        #[test]
        fn encoded_order_picks_the_least_value_of_the_extreme_key(
            values in proptest::collection::vec("[aAbB \\x00\\x01é]{0,4}", 1..8),
            nocase in any::<bool>(),
            max in any::<bool>(),
        ) {
            let c = if nocase { Collation::NoCase } else { Collation::Rtrim };
            let encoded: Vec<Datum<'_>> = values.iter().map(|v| encode(text(v), c, max)).collect();
            let best = match max {
                true => encoded.iter().max_by(|a, b| a.total_cmp(b)),
                false => encoded.iter().min_by(|a, b| a.total_cmp(b)),
            }.unwrap().clone();
            prop_assert_eq!(decode(best, max), text(&direct(&values, c, max)));
            for v in &values {
                prop_assert_eq!(decode(encode(text(v), c, max), max), text(v));
            }
        }
    }

    #[test]
    fn other_values_pass_through() {
        assert_eq!(encode(Datum::Int(3), Collation::NoCase, true), Datum::Int(3));
        assert_eq!(decode(Datum::Null, false), Datum::Null);
    }
}
