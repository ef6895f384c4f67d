//! An exact running sum of doubles (and integers), rounded once when read:
//! the maintained `SUM`/`AVG` of a REAL column is the correctly rounded sum
//! of the values present, whatever was inserted and retracted before.
//!
//! Every finite double is an integer multiple of 2^-1074, so a sum of
//! doubles is a fixed-point number: [`ExactSum`] keeps it as a two's
//! complement integer of 64-bit words, each worth 2^(64·(base + i)), holding
//! only the words between the lowest and highest bits ever set (a sum of
//! prices spans two or three words, not the 35 the whole double range
//! needs). Adding a double touches the two or three words its mantissa
//! covers plus a carry that rarely goes further.
//!
//! Infinities and NaN are counted apart: they cannot be retracted out of a
//! floating-point sum, but they can be out of a count.
//!
//! Against the source: SQLite (3.43 on) sums doubles with Kahan-Babuska-
//! Neumaier compensation in scan order, which usually equals the correctly
//! rounded sum; it does not where the compensation term (itself a rounded
//! double sum) loses bits — one ulp off for some mixes of tenths and 1e16
//! (`denorm-testkit/tests/float_sums.rs`), more under heavy cancellation —
//! or where an intermediate sum passes the double range (SQLite returns ±Inf
//! or NaN for a finite total). There denorm's value is the correctly rounded
//! one; SQLite's depends on its scan order. PostgreSQL adds `float8` values
//! without compensation, in scan order: its last digits depend on that order
//! and the differential tests compare doubles to 1e-9 relative.

use denorm_types::Diff;

/// Bits of a double's mantissa field, and its implicit leading one.
const FRACTION_BITS: u32 = 52;
const IMPLICIT_ONE: u64 = 1 << FRACTION_BITS;
/// The weight of the lowest bit of a subnormal: 2^-1074.
const LOWEST_BIT: i64 = -1074;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExactSum {
    /// Little-endian two's complement words; the top word is all zeros or
    /// all ones (a sign word), so an addition below it cannot overflow.
    /// Empty means zero.
    words: Vec<u64>,
    /// `words[i]` is worth 2^(64·(base + i)).
    base: i32,
    positive_infinities: Diff,
    negative_infinities: Diff,
    nans: Diff,
}

/// What an exact sum reads as, before the dialect decides how to show a
/// NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rounded {
    Finite(f64),
    /// +Inf (`true`) or -Inf present, not both, no NaN.
    Infinite(bool),
    /// A NaN present, or +Inf and -Inf together.
    NotANumber,
}

impl ExactSum {
    /// Heap bytes of the words (see [`crate::memory`]).
    pub(crate) fn heap_bytes(&self) -> usize {
        crate::memory::vec(&self.words)
    }
}

impl ExactSum {
    /// The state as it is kept: words, base, and the counts of +Inf, -Inf
    /// and NaN (checkpoints).
    pub(crate) fn parts(&self) -> (&[u64], i32, [Diff; 3]) {
        (&self.words, self.base, [self.positive_infinities, self.negative_infinities, self.nans])
    }

    /// The sum from [`ExactSum::parts`]; `None` unless the top word is a
    /// sign word (all zeros or all ones), as every kept sum's is.
    pub(crate) fn from_parts(words: Vec<u64>, base: i32, counts: [Diff; 3]) -> Option<ExactSum> {
        let signed = words.last().is_none_or(|&top| top == 0 || top == u64::MAX);
        let [positive_infinities, negative_infinities, nans] = counts;
        signed.then_some(ExactSum { words, base, positive_infinities, negative_infinities, nans })
    }

    /// Adds `value · diff`.
    pub(crate) fn add(&mut self, value: f64, diff: Diff) {
        if diff == 0 {
            return;
        }
        if value.is_nan() {
            self.nans += diff;
            return;
        }
        if value.is_infinite() {
            match value > 0.0 {
                true => self.positive_infinities += diff,
                false => self.negative_infinities += diff,
            }
            return;
        }
        let bits = value.to_bits();
        let exponent = ((bits >> FRACTION_BITS) & 0x7ff) as i64;
        let fraction = bits & (IMPLICIT_ONE - 1);
        let (mantissa, lowest) = match exponent {
            0 => (fraction, LOWEST_BIT),
            e => (fraction | IMPLICIT_ONE, e - 1075),
        };
        if mantissa == 0 {
            return;
        }
        let negative = (value < 0.0) != (diff < 0);
        let magnitude = u128::from(mantissa) * u128::from(diff.unsigned_abs());
        self.add_magnitude(magnitude, lowest, negative);
    }

    /// Adds an integer (a SQLite column mixing integers and doubles).
    pub(crate) fn add_integer(&mut self, value: i128) {
        self.add_magnitude(value.unsigned_abs(), 0, value < 0);
    }

    /// Adds `±magnitude · 2^lowest`.
    fn add_magnitude(&mut self, magnitude: u128, lowest: i64, negative: bool) {
        if magnitude == 0 {
            return;
        }
        let word = lowest.div_euclid(64) as i32;
        let shift = lowest.rem_euclid(64) as u32;
        let low = magnitude << shift;
        let high = if shift == 0 { 0 } else { (magnitude >> (128 - shift)) as u64 };
        let parts = [low as u64, (low >> 64) as u64, high];
        // The parts fill words `word..word + 3`; a sign word must stay above.
        self.cover(word, word + 3);
        let at = (word - self.base) as usize;
        let mut carry = false;
        for (i, word) in self.words[at..].iter_mut().enumerate() {
            let part = parts.get(i).copied().unwrap_or(0);
            if i >= parts.len() && !carry {
                break;
            }
            if negative {
                let (d, b1) = word.overflowing_sub(part);
                let (d, b2) = d.overflowing_sub(u64::from(carry));
                *word = d;
                carry = b1 || b2;
            } else {
                let (s, c1) = word.overflowing_add(part);
                let (s, c2) = s.overflowing_add(u64::from(carry));
                *word = s;
                carry = c1 || c2;
            }
        }
        self.normalize();
    }

    /// Makes the words reach from `low` to `high` (word numbers), extending
    /// with zeros below and sign words above.
    fn cover(&mut self, low: i32, high: i32) {
        if self.words.is_empty() {
            self.base = low;
        }
        if low < self.base {
            let extra = (self.base - low) as usize;
            self.words.splice(0..0, std::iter::repeat_n(0, extra));
            self.base = low;
        }
        let sign = self.sign_word();
        while self.base + (self.words.len() as i32) <= high {
            self.words.push(sign);
        }
    }

    fn sign_word(&self) -> u64 {
        match self.words.last() {
            Some(&top) if (top as i64) < 0 => u64::MAX,
            _ => 0,
        }
    }

    /// Restores the invariants: a sign word on top, and no redundant words
    /// above it or zero words below.
    fn normalize(&mut self) {
        let sign = self.sign_word();
        if self.words.last().is_some_and(|&top| top != sign) {
            self.words.push(sign);
        }
        // Two equal sign words on top: one says it all.
        while let [.., below, top] = self.words[..] {
            if below == top && (top == 0 || top == u64::MAX) {
                self.words.pop();
            } else {
                break;
            }
        }
        let zeros = self.words.iter().take_while(|&&w| w == 0).count();
        if zeros == self.words.len() {
            self.words.clear();
        } else if zeros > 0 {
            self.words.drain(..zeros);
            self.base += zeros as i32;
        }
    }

    /// Whether the sum is exactly zero with no infinity or NaN in it.
    pub(crate) fn is_zero(&self) -> bool {
        self.words.is_empty() && self.positive_infinities == 0 && self.negative_infinities == 0 && self.nans == 0
    }

    /// The sum rounded once, to nearest with ties to even.
    pub(crate) fn value(&self) -> Rounded {
        if self.nans > 0 || self.positive_infinities > 0 && self.negative_infinities > 0 {
            return Rounded::NotANumber;
        }
        if self.positive_infinities > 0 || self.negative_infinities > 0 {
            return Rounded::Infinite(self.positive_infinities > 0);
        }
        Rounded::Finite(self.finite())
    }

    fn finite(&self) -> f64 {
        let Some(&top) = self.words.last() else { return 0.0 };
        let negative = (top as i64) < 0;
        let magnitude: Vec<u64> = if negative { negated(&self.words) } else { self.words.clone() };
        let rounded = round_to_double(&magnitude, i64::from(self.base) * 64);
        if negative {
            -rounded
        } else {
            rounded
        }
    }
}

/// The two's complement negation of `words`.
fn negated(words: &[u64]) -> Vec<u64> {
    let mut carry = true;
    words
        .iter()
        .map(|&w| {
            let (n, c) = (!w).overflowing_add(u64::from(carry));
            carry = c;
            n
        })
        .collect()
}

/// A non-negative fixed-point integer (`words`, the lowest bit worth
/// 2^`lowest`) rounded to the nearest double, ties to even.
fn round_to_double(words: &[u64], lowest: i64) -> f64 {
    let Some(top) = words.iter().rposition(|&w| w != 0) else { return 0.0 };
    let highest = lowest + 64 * top as i64 + 63 - i64::from(words[top].leading_zeros());
    // The mantissa's lowest bit: 53 bits below the highest one, or the
    // subnormal limit (every bit below it is zero: the sum of doubles is a
    // multiple of 2^-1074).
    let mut low = (highest - 52).max(LOWEST_BIT);
    let width = (highest - low + 1) as u32;
    let mut mantissa = bits_at(words, lowest, low) & (u64::MAX >> (64 - width));
    if low > LOWEST_BIT {
        let half = bits_at(words, lowest, low - 1) & 1 == 1;
        let sticky = any_below(words, lowest, low - 1);
        if half && (sticky || mantissa & 1 == 1) {
            mantissa += 1;
            if mantissa == IMPLICIT_ONE << 1 {
                mantissa >>= 1;
                low += 1;
            }
        }
    }
    if mantissa < IMPLICIT_ONE {
        // Subnormal (low is the subnormal limit): the fraction field as is.
        return f64::from_bits(mantissa);
    }
    let biased = low + 1075;
    if biased >= 0x7ff {
        return f64::INFINITY;
    }
    f64::from_bits(((biased as u64) << FRACTION_BITS) | (mantissa - IMPLICIT_ONE))
}

/// The 64 bits starting at bit weight 2^`at` (zeros outside the words).
fn bits_at(words: &[u64], lowest: i64, at: i64) -> u64 {
    let offset = at - lowest;
    let word = |i: i64| if i < 0 { 0 } else { words.get(i as usize).copied().unwrap_or(0) };
    let (i, shift) = (offset.div_euclid(64), offset.rem_euclid(64) as u32);
    let low = word(i) >> shift;
    let high = if shift == 0 { 0 } else { word(i + 1) << (64 - shift) };
    low | high
}

/// Whether any bit worth less than 2^`at` is set.
fn any_below(words: &[u64], lowest: i64, at: i64) -> bool {
    let offset = at - lowest;
    if offset <= 0 {
        return false;
    }
    let (i, shift) = (offset.div_euclid(64) as usize, offset.rem_euclid(64) as u32);
    let whole = words.iter().take(i).any(|&w| w != 0);
    let partial = shift > 0 && words.get(i).is_some_and(|&w| w & ((1u64 << shift) - 1) != 0);
    whole || partial
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::reference::fsum;

    fn sum_of(values: &[(f64, Diff)]) -> f64 {
        let mut sum = ExactSum::default();
        for &(v, d) in values {
            sum.add(v, d);
        }
        match sum.value() {
            Rounded::Finite(f) => f,
            other => panic!("{other:?}"),
        }
    }

    /// The two cases, and what SQLite itself answers for the rows
    /// left (checked with the bundled SQLite below).
    #[test]
    fn retractions_leave_the_sum_of_the_rows_present() {
        assert_eq!(sum_of(&[(0.1, 1), (0.2, 1), (1e16, 1), (1e16, -1)]), 0.30000000000000004);
        assert_eq!(sum_of(&[(0.1, 1), (0.2, 1), (0.3, 1), (0.1, -1), (0.2, -1)]), 0.3);
        assert_eq!(sum_of(&[(1e308, 1), (1e308, 1), (1e308, -1)]), 1e308);
        assert_eq!(sum_of(&[(5e-324, 3), (5e-324, -1)]), 1e-323);
        assert_eq!(sum_of(&[(-1.5, 2), (0.25, 1)]), -2.75);
        assert_eq!(sum_of(&[(1.0, 1), (1e-300, 1), (1.0, -1)]), 1e-300);
        assert_eq!(sum_of(&[(f64::MAX, 1), (f64::MAX, 1)]), f64::INFINITY);
        assert_eq!(sum_of(&[(-0.0, 1)]).to_bits(), 0.0f64.to_bits());
        assert_eq!(sum_of(&[(2.0, 1), (-2.0, 1)]), 0.0);
    }

    #[test]
    fn ties_round_to_even() {
        // 1 + 2^-53 is halfway between 1 and its successor: to 1 (even).
        assert_eq!(sum_of(&[(1.0, 1), (2f64.powi(-53), 1)]), 1.0);
        // Just above the half: up.
        assert_eq!(sum_of(&[(1.0, 1), (2f64.powi(-53), 1), (2f64.powi(-100), 1)]), 1.0 + f64::EPSILON);
        // 1 + 3·2^-53 is halfway between 1 + 2^-52 (odd) and 1 + 2^-51: up.
        assert_eq!(sum_of(&[(1.0, 1), (2f64.powi(-53), 3)]), 1.0 + 2.0 * f64::EPSILON);
        assert_eq!(sum_of(&[(-1.0, 1), (-(2f64.powi(-53)), 3)]), -1.0 - 2.0 * f64::EPSILON);
    }

    #[test]
    fn infinities_and_nan_are_counted() {
        let mut sum = ExactSum::default();
        sum.add(f64::INFINITY, 1);
        sum.add(1.0, 1);
        assert_eq!(sum.value(), Rounded::Infinite(true));
        sum.add(f64::NEG_INFINITY, 1);
        assert_eq!(sum.value(), Rounded::NotANumber);
        sum.add(f64::INFINITY, -1);
        assert_eq!(sum.value(), Rounded::Infinite(false));
        sum.add(f64::NEG_INFINITY, -1);
        assert_eq!(sum.value(), Rounded::Finite(1.0));
        sum.add(f64::NAN, 1);
        assert_eq!(sum.value(), Rounded::NotANumber);
        sum.add(f64::NAN, -1);
        sum.add(1.0, -1);
        assert!(sum.is_zero());
    }

    #[test]
    fn integers_join_exactly() {
        let mut sum = ExactSum::default();
        sum.add(0.5, 1);
        sum.add_integer(i128::from(i64::MAX));
        sum.add_integer(i128::from(i64::MAX));
        assert_eq!(sum.value(), Rounded::Finite(2f64.powi(64)));
        sum.add_integer(-2 * i128::from(i64::MAX));
        assert_eq!(sum.value(), Rounded::Finite(0.5));
    }

    fn a_double() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-1000i32..1000).prop_map(|c| f64::from(c) / 10.0),
            (-1e6f64..1e6),
            prop_oneof![Just(1e16), Just(-1e16), Just(1e300), Just(-1e300), Just(5e-324), Just(1e-310), Just(0.1)],
            (any::<u64>(), -60i32..60).prop_map(|(m, e)| (m >> 11) as f64 * 2f64.powi(e)),
        ]
    }

    proptest! {
        /// Inserting values in one order and retracting some in another
        /// gives the correctly rounded sum of those left.
        #[test]
        fn equals_the_correctly_rounded_sum_of_what_is_present(
            kept in proptest::collection::vec(a_double(), 0..12),
            gone in proptest::collection::vec(a_double(), 0..12),
        ) {
            let mut sum = ExactSum::default();
            for (i, v) in gone.iter().chain(&kept).enumerate() {
                sum.add(*v, 1);
                if i % 3 == 0 {
                    sum.add(*v, 2);
                    sum.add(*v, -2);
                }
            }
            for v in gone.iter().rev() {
                sum.add(*v, -1);
            }
            let want = fsum(&kept);
            prop_assert_eq!(sum.value(), Rounded::Finite(want + 0.0), "{:?}", kept);
            for v in &kept {
                sum.add(*v, -1);
            }
            prop_assert!(sum.is_zero(), "{:?}", sum);
        }
    }
}
