//! Packed rows.
//!
//! A [`Row`] is a sequence of datums encoded into one byte buffer: a tag byte
//! per datum, then its payload. Integers take the smallest of 1/2/4/8 bytes that
//! holds them, so equal rows always have equal bytes and rows hash, compare for
//! identity and consolidate as plain byte strings. Reading a datum borrows text
//! straight from the buffer.
//!
//! ```text
//!  tag  payload
//!  0    -            NULL
//!  1/2  -            false / true
//!  3    i8           4  i16 LE     5  i32 LE     6  i64 LE
//!  7    f64 LE bits
//!  8    u8 len, bytes                9  u32 LE len, bytes      (UTF-8 text)
//!  10   16 bytes: rust_decimal's serialization (numeric, display scale kept)
//!  11   i32 LE days (date)     12  i64 LE µs (timestamp)  13  i64 LE µs UTC (timestamptz)
//!  14   16 bytes (uuid)
//!  15/16 u8 / u32 LE len, bytes (BLOB)
//!  17   i32 LE months, i32 LE days, i64 LE µs (interval)
//!  18+s varint: zigzag mantissa m  (a double that is exactly m / 10^s, s ≤ 15)
//! ```
//!
//! **Doubles that are short decimals** (prices, rates, quantities: `12.5`,
//! `0.07`, `3.0`) take tag `18 + s` and the LEB128 varint of the zigzag of
//! `m`, where `m as f64 / 10^s` (a correctly rounded division of two exact
//! doubles) gives back the double's exact bits: two to eight bytes instead
//! of nine (a TPC-H price five, a discount two). The packer finds `s` and
//! `m` by one rule, a function of the double's bits alone: the largest
//! scale whose mantissa `round(x · 10^s)` stays below 2^53, kept if it
//! gives back `x`, then `m`'s trailing zeros dropped while `s` > 0 (each
//! leaves the same fraction, so the same quotient); and the short form only
//! when its varint takes at most 7 bytes. So every double still has exactly
//! one encoding (a decoder accepts others, which no packer writes). Tag 7
//! keeps the rest: -0.0, NaN, infinities, subnormals, doubles with more
//! significant digits (`1.0 / 3.0`, `0.1 + 0.2`).
//!
//! Identity is bytewise: `Int(1)` and `Float(1.0)` are different rows. Keys
//! used for SQL equality (join and group keys) are packed with
//! [`RowPacker::push_key`], which folds integral doubles to integers and -0.0
//! to 0, numerics to their form without trailing zeros (an integral
//! one to the integer) and intervals to their key form (whole days and a
//! time of day: `'1 mon'` as `'30 days'`), so that SQL-equal keys get equal
//! bytes.
//!
//! A row of at most [`Row::INLINE`] encoded bytes (an aggregate's output, a
//! key, a narrow table's row) is stored inside the 24-byte handle itself;
//! longer rows own one heap buffer. Every row of a given encoding has exactly
//! one representation, but equality, hashing and ordering only ever look at
//! the encoded bytes.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::datum::Datum;
use crate::interval::Interval;
use crate::numeric::{self, Decimal};

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT8: u8 = 3;
const INT16: u8 = 4;
const INT32: u8 = 5;
const INT64: u8 = 6;
const FLOAT: u8 = 7;
const TEXT8: u8 = 8;
const TEXT32: u8 = 9;
const NUMERIC: u8 = 10;
const DATE: u8 = 11;
const TIMESTAMP: u8 = 12;
const TIMESTAMPTZ: u8 = 13;
const UUID: u8 = 14;
const BLOB8: u8 = 15;
const BLOB32: u8 = 16;
const INTERVAL: u8 = 17;
/// Tags `DECIMAL..=DECIMAL + MAX_SCALE`: a double that is a short decimal,
/// the scale in the tag (see the module documentation).
const DECIMAL: u8 = 18;
const MAX_SCALE: u8 = 15;
const DECIMAL_LAST: u8 = DECIMAL + MAX_SCALE;
/// `10^s` for every scale: all exact doubles (10^15 < 2^53).
const POW10: [f64; MAX_SCALE as usize + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
/// 2^53: mantissas below it convert to doubles exactly.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;
/// Zigzagged mantissas below this take at most 7 varint bytes, so the short
/// form (tag + varint) is shorter than tag 7's nine bytes.
const SHORT_LIMIT: u64 = 1 << 49;

/// A packed row: see the module documentation for its encoding.
#[derive(Clone)]
pub struct Row {
    repr: Repr,
}

/// Short rows inline, long rows on the heap; the choice is a function of the
/// length alone. Rows are immutable, so a long row's buffer is shared by its
/// clones (a view keeping the row it also reports costs no copy).
#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; Row::INLINE] },
    Heap(Arc<[u8]>),
}

impl Default for Row {
    fn default() -> Row {
        Row { repr: Repr::Inline { len: 0, bytes: [0; Row::INLINE] } }
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        match (&self.repr, &other.repr) {
            // Inline bytes past `len` are always zero, so whole arrays compare
            // like the encodings, without a call to memcmp.
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => a == b && x == y,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for Row {}

impl Hash for Row {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// Rows hash and compare as their bytes, so maps keyed by rows can be probed
/// with borrowed bytes.
impl Borrow<[u8]> for Row {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialOrd for Row {
    fn partial_cmp(&self, other: &Row) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Row {
    fn cmp(&self, other: &Row) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Row {
    /// Rows of at most this many encoded bytes need no heap allocation.
    pub const INLINE: usize = 22;

    /// The row with no columns.
    pub fn empty() -> Row {
        Row::default()
    }

    /// A row from bytes that are a valid encoding (built by a packer or
    /// copied from another row).
    fn from_encoded(encoded: &[u8]) -> Row {
        if encoded.len() <= Row::INLINE {
            let mut bytes = [0; Row::INLINE];
            bytes[..encoded.len()].copy_from_slice(encoded);
            Row { repr: Repr::Inline { len: encoded.len() as u8, bytes } }
        } else {
            Row { repr: Repr::Heap(encoded.into()) }
        }
    }

    pub fn pack<'a, I>(datums: I) -> Row
    where
        I: IntoIterator,
        I::Item: Borrow<Datum<'a>>,
    {
        let mut packer = RowPacker::new();
        for d in datums {
            packer.push(d.borrow());
        }
        packer.finish()
    }

    pub fn iter(&self) -> DatumIter<'_> {
        DatumIter { data: self.as_bytes() }
    }

    /// All datums, borrowed.
    pub fn unpack(&self) -> Vec<Datum<'_>> {
        self.iter().collect()
    }

    /// The datum at column `index`. Panics when the row is shorter, which is a
    /// planner bug: column indexes are resolved at plan time.
    #[inline]
    pub fn get(&self, index: usize) -> Datum<'_> {
        let data = self.as_bytes();
        decode(&data[column_start(data, index)..]).0
    }

    /// The number of columns.
    #[inline]
    pub fn len(&self) -> usize {
        let data = self.as_bytes();
        let (mut at, mut count) = (0, 0);
        while at < data.len() {
            at += encoded_len(&data[at..]);
            count += 1;
        }
        count
    }

    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// The encoded bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Heap(data) => data,
        }
    }

    /// Byte ranges of every datum's encoding, for copying columns without
    /// decoding them.
    pub fn spans(&self, out: &mut Vec<(u32, u32)>) {
        spans(self.as_bytes(), out);
    }

    /// [`Row::spans`] of the first `count` columns only (all of them when
    /// the row has fewer): a projection of a wide row's leading columns
    /// does not walk the rest.
    pub fn spans_of_first(&self, count: usize, out: &mut Vec<(u32, u32)>) {
        spans_of_first(self.as_bytes(), count, out);
    }

    /// The encoded bytes of columns `first..first + count`, a contiguous run
    /// (packed datums are self-delimiting, so they are a valid row).
    #[inline]
    pub fn columns_span(&self, first: usize, count: usize) -> std::ops::Range<usize> {
        let data = self.as_bytes();
        let start = column_start(data, first);
        let mut end = start;
        for _ in 0..count {
            assert!(end < data.len(), "column index out of range (planner bug)");
            end += encoded_len(&data[end..]);
        }
        start..end
    }

    /// Bytes of this row's heap buffer (none when inline; shared by clones),
    /// not counting the 24-byte handle or the buffer's reference counts.
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Inline { .. } => 0,
            Repr::Heap(data) => data.len(),
        }
    }

    pub fn has_null(&self) -> bool {
        self.iter().any(|d| d.is_null())
    }
}

/// A packed row borrowed from a buffer that holds rows back to back (an
/// arrangement's group) or from a [`Row`]: reads like a row without owning it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowRef<'a> {
    data: &'a [u8],
}

impl<'a> RowRef<'a> {
    /// The first `len` bytes of `data` as a row; `data` must come from
    /// [`Row::as_bytes`] or [`RowRef::as_bytes`] cut at a row boundary.
    pub fn from_prefix(data: &'a [u8], len: usize) -> RowRef<'a> {
        RowRef { data: &data[..len] }
    }

    pub fn iter(self) -> DatumIter<'a> {
        DatumIter { data: self.data }
    }

    #[inline]
    pub fn as_bytes(self) -> &'a [u8] {
        self.data
    }

    /// Byte ranges of every datum's encoding (see [`Row::spans`]).
    pub fn spans(self, out: &mut Vec<(u32, u32)>) {
        spans(self.data, out);
    }

    pub fn to_row(self) -> Row {
        Row::from_encoded(self.data)
    }

    /// Whether [`RowPacker::push_key`] may encode some column differently
    /// (a double in tag 7 or an integral short decimal, a numeric, an
    /// interval): rows without such columns are their own key form.
    pub fn has_key_variants(self) -> bool {
        let mut at = 0;
        while at < self.data.len() {
            if matches!(self.data[at], FLOAT | NUMERIC | INTERVAL | DECIMAL) {
                return true;
            }
            at += encoded_len(&self.data[at..]);
        }
        false
    }

    /// The row packed again by today's packer: a row stored before doubles
    /// had the short decimal form (durable formats before it) holds every
    /// double in tag 7, and its canonical bytes differ when a double now
    /// has a short form. Rows without a tag-7 double are copied as they are.
    pub fn repacked(self) -> Row {
        let mut at = 0;
        while at < self.data.len() {
            if self.data[at] == FLOAT {
                return Row::pack(self.iter());
            }
            at += encoded_len(&self.data[at..]);
        }
        self.to_row()
    }

    /// The length in bytes of the first `count` columns.
    pub fn prefix_len(self, count: usize) -> usize {
        let mut at = 0;
        for _ in 0..count {
            at += encoded_len(&self.data[at..]);
        }
        at
    }
}

impl<'a> From<&'a Row> for RowRef<'a> {
    fn from(row: &'a Row) -> RowRef<'a> {
        RowRef { data: row.as_bytes() }
    }
}

impl fmt::Debug for RowRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_row(), f)
    }
}

/// Lets hash maps keyed by rows insert from a borrowed row without cloning on
/// lookups that find an existing entry (`entry_ref`).
impl From<&Row> for Row {
    fn from(row: &Row) -> Row {
        row.clone()
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, d) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str(")")
    }
}

/// Iterates over a row's datums.
#[derive(Debug, Clone)]
pub struct DatumIter<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for DatumIter<'a> {
    type Item = Datum<'a>;

    fn next(&mut self) -> Option<Datum<'a>> {
        if self.data.is_empty() {
            return None;
        }
        let (datum, len) = decode(self.data);
        self.data = &self.data[len..];
        Some(datum)
    }
}

/// Where column `index` starts. Panics when the row is shorter, which is a
/// planner bug: column indexes are resolved at plan time.
fn column_start(data: &[u8], index: usize) -> usize {
    let mut at = 0;
    for _ in 0..index {
        assert!(at < data.len(), "column index out of range (planner bug)");
        at += encoded_len(&data[at..]);
    }
    assert!(at < data.len(), "column index out of range (planner bug)");
    at
}

fn spans(data: &[u8], out: &mut Vec<(u32, u32)>) {
    spans_of_first(data, usize::MAX, out);
}

/// The spans of at most the first `count` columns.
fn spans_of_first(data: &[u8], count: usize, out: &mut Vec<(u32, u32)>) {
    out.clear();
    let mut at = 0usize;
    while at < data.len() && out.len() < count {
        let len = encoded_len(&data[at..]);
        out.push((at as u32, (at + len) as u32));
        at += len;
    }
}

#[inline]
fn encoded_len(data: &[u8]) -> usize {
    match data[0] {
        NULL | FALSE | TRUE => 1,
        INT8 => 2,
        INT16 => 3,
        INT32 => 5,
        INT64 | FLOAT | TIMESTAMP | TIMESTAMPTZ => 9,
        DATE => 5,
        NUMERIC | UUID | INTERVAL => 17,
        TEXT8 | BLOB8 => 2 + data[1] as usize,
        TEXT32 | BLOB32 => 5 + u32::from_le_bytes(data[1..5].try_into().unwrap()) as usize,
        DECIMAL..=DECIMAL_LAST => 1 + varint_len(&data[1..]),
        tag => unreachable!("corrupt row: tag {tag}"),
    }
}

/// The `(scale, zigzagged mantissa)` of a double stored in the short form,
/// `None` for tag 7. The one rule that keeps the encoding canonical: take
/// the largest scale whose mantissa `x · 10^s` stays below 2^53, keep it
/// if `m / 10^s` gives back `x`'s exact bits, then drop `m`'s trailing zeros
/// (each one leaves the same fraction, so the same correctly rounded
/// quotient); short only when the varint takes at most 7 bytes.
#[inline]
fn short_decimal(x: f64) -> Option<(u8, u64)> {
    let magnitude = x.abs();
    // NaN and infinities fail this too.
    if magnitude.is_nan() || magnitude >= EXACT_LIMIT {
        return None;
    }
    // The scales whose mantissa fits are 0..=scale (the product grows with
    // the scale; scale 0 always fits: magnitude < 2^53). Counted without
    // branches.
    let mut scale = POW10.iter().filter(|&&p| magnitude * p < EXACT_LIMIT).count() - 1;
    let m = (x * POW10[scale]).round();
    if m.abs() >= EXACT_LIMIT {
        return None;
    }
    let mut m = m as i64;
    // Bitwise: -0.0 (whose mantissa is 0) and subnormals fail here.
    if (m as f64 / POW10[scale]).to_bits() != x.to_bits() {
        return None;
    }
    // At most 15 trailing zeros, dropped 8, 4, 2 and 1 at a time.
    for (k, p) in [(8, 100_000_000), (4, 10_000), (2, 100), (1, 10)] {
        if scale >= k && m % p == 0 {
            m /= p;
            scale -= k;
        }
    }
    let zigzag = ((m << 1) ^ (m >> 63)) as u64;
    (zigzag < SHORT_LIMIT).then_some((scale as u8, zigzag))
}

/// The double a short form holds.
#[inline]
fn decimal_value(scale: u8, zigzag: u64) -> f64 {
    let m = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
    match scale {
        0 => m as f64,
        s => m as f64 / POW10[s as usize],
    }
}

/// The bytes of the varint at the start of `data`.
#[inline]
fn varint_len(data: &[u8]) -> usize {
    match data.iter().position(|b| b & 0x80 == 0) {
        Some(at) if at < 10 => at + 1,
        _ => unreachable!("corrupt row: an unterminated varint"),
    }
}

/// The varint at the start of `data` and its length in bytes.
#[inline]
fn read_varint(data: &[u8]) -> (u64, usize) {
    let len = varint_len(data);
    let value = data[..len].iter().rev().fold(0u64, |v, b| (v << 7) | u64::from(b & 0x7f));
    (value, len)
}

#[inline]
fn decode(data: &[u8]) -> (Datum<'_>, usize) {
    match data[0] {
        NULL => (Datum::Null, 1),
        FALSE => (Datum::Bool(false), 1),
        TRUE => (Datum::Bool(true), 1),
        INT8 => (Datum::Int(i64::from(data[1] as i8)), 2),
        INT16 => (Datum::Int(i64::from(i16::from_le_bytes([data[1], data[2]]))), 3),
        INT32 => (Datum::Int(i64::from(i32::from_le_bytes(data[1..5].try_into().unwrap()))), 5),
        INT64 => (Datum::Int(i64::from_le_bytes(data[1..9].try_into().unwrap())), 9),
        FLOAT => (Datum::Float(f64::from_le_bytes(data[1..9].try_into().unwrap())), 9),
        NUMERIC => (Datum::Numeric(Decimal::deserialize(data[1..17].try_into().unwrap())), 17),
        DATE => (Datum::Date(i32::from_le_bytes(data[1..5].try_into().unwrap())), 5),
        TIMESTAMP => (Datum::Timestamp(i64::from_le_bytes(data[1..9].try_into().unwrap())), 9),
        TIMESTAMPTZ => (Datum::TimestampTz(i64::from_le_bytes(data[1..9].try_into().unwrap())), 9),
        UUID => (Datum::Uuid(data[1..17].try_into().unwrap()), 17),
        INTERVAL => (
            Datum::Interval(Interval {
                months: i32::from_le_bytes(data[1..5].try_into().unwrap()),
                days: i32::from_le_bytes(data[5..9].try_into().unwrap()),
                micros: i64::from_le_bytes(data[9..17].try_into().unwrap()),
            }),
            17,
        ),
        TEXT8 => {
            let len = data[1] as usize;
            (Datum::Text(Cow::Borrowed(text(&data[2..2 + len]))), 2 + len)
        }
        TEXT32 => {
            let len = u32::from_le_bytes(data[1..5].try_into().unwrap()) as usize;
            (Datum::Text(Cow::Borrowed(text(&data[5..5 + len]))), 5 + len)
        }
        BLOB8 => {
            let len = data[1] as usize;
            (Datum::Blob(Cow::Borrowed(&data[2..2 + len])), 2 + len)
        }
        BLOB32 => {
            let len = u32::from_le_bytes(data[1..5].try_into().unwrap()) as usize;
            (Datum::Blob(Cow::Borrowed(&data[5..5 + len])), 5 + len)
        }
        tag @ DECIMAL..=DECIMAL_LAST => {
            let (zigzag, len) = read_varint(&data[1..]);
            (Datum::Float(decimal_value(tag - DECIMAL, zigzag)), 1 + len)
        }
        tag => unreachable!("corrupt row: tag {tag}"),
    }
}

fn text(bytes: &[u8]) -> &str {
    // Rows are only built by RowPacker from &str, so the bytes are UTF-8.
    std::str::from_utf8(bytes).expect("row text is UTF-8")
}

/// What [`RowPacker::seal`] appends: three words, the most a short row's
/// whole-window read takes.
const SEAL_PADDING: usize = 24;

/// Builds a [`Row`]; reuse one packer across rows to avoid reallocating.
#[derive(Debug, Default)]
pub struct RowPacker {
    buf: Vec<u8>,
}

impl RowPacker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of the packer's buffer allocation (its capacity), for state
    /// accounting.
    pub fn allocated_bytes(&self) -> usize {
        self.buf.capacity()
    }

    pub fn push(&mut self, datum: &Datum<'_>) {
        match datum {
            Datum::Null => self.buf.push(NULL),
            Datum::Bool(false) => self.buf.push(FALSE),
            Datum::Bool(true) => self.buf.push(TRUE),
            Datum::Int(i) => self.push_int(*i),
            Datum::Float(x) => self.push_float(*x),
            Datum::Text(t) => self.push_bytes(TEXT8, TEXT32, t.as_bytes()),
            Datum::Blob(b) => self.push_bytes(BLOB8, BLOB32, b),
            Datum::Numeric(n) => {
                // Zero has one encoding whatever its sign.
                let n = if n.is_zero() { numeric::from_parts(0, n.scale()).unwrap_or(*n) } else { *n };
                self.buf.push(NUMERIC);
                self.buf.extend_from_slice(&n.serialize());
            }
            Datum::Date(d) => {
                self.buf.push(DATE);
                self.buf.extend_from_slice(&d.to_le_bytes());
            }
            Datum::Timestamp(t) => {
                self.buf.push(TIMESTAMP);
                self.buf.extend_from_slice(&t.to_le_bytes());
            }
            Datum::TimestampTz(t) => {
                self.buf.push(TIMESTAMPTZ);
                self.buf.extend_from_slice(&t.to_le_bytes());
            }
            Datum::Uuid(u) => {
                self.buf.push(UUID);
                self.buf.extend_from_slice(u);
            }
            Datum::Interval(i) => {
                self.buf.push(INTERVAL);
                self.buf.extend_from_slice(&i.months.to_le_bytes());
                self.buf.extend_from_slice(&i.days.to_le_bytes());
                self.buf.extend_from_slice(&i.micros.to_le_bytes());
            }
        }
    }

    /// Pushes a datum as part of an equality key: doubles that hold an exact
    /// integer are stored as that integer and -0.0 as 0, so that values SQL
    /// considers equal have equal bytes.
    pub fn push_key(&mut self, datum: &Datum<'_>) {
        match datum {
            Datum::Float(x) if x.fract() == 0.0 && *x >= -9.223372036854776e18 && *x < 9.223372036854776e18 => {
                self.push_int(*x as i64)
            }
            Datum::Numeric(n) => {
                let n = numeric::key_form(*n);
                match (n.scale(), i64::try_from(n.mantissa())) {
                    (0, Ok(i)) => self.push_int(i),
                    _ => self.push(&Datum::Numeric(n)),
                }
            }
            Datum::Interval(i) => self.push(&Datum::Interval(i.key_form())),
            d => self.push(d),
        }
    }

    /// Pushes every column of `row` as [`RowPacker::push_key`] would.
    pub fn extend_key_form(&mut self, row: RowRef<'_>) {
        for datum in row.iter() {
            self.push_key(&datum);
        }
    }

    /// Copies column `index` of `row` without decoding it.
    pub fn push_column(&mut self, row: &Row, index: usize) {
        let data = row.as_bytes();
        let at = column_start(data, index);
        self.buf.extend_from_slice(&data[at..at + encoded_len(&data[at..])]);
    }

    /// Pushes column `index` of `row` as [`RowPacker::push_key`] would, copying
    /// its encoded bytes unless the key form may differ (a double in tag 7 or
    /// an integral short decimal, a numeric, an interval: a short decimal of
    /// scale > 0 is never integral, so its key form is itself). Returns
    /// whether the column is NULL.
    pub fn push_key_column(&mut self, row: &Row, index: usize) -> bool {
        let data = row.as_bytes();
        let at = column_start(data, index);
        match data[at] {
            FLOAT | NUMERIC | INTERVAL | DECIMAL => self.push_key(&decode(&data[at..]).0),
            _ => self.buf.extend_from_slice(&data[at..at + encoded_len(&data[at..])]),
        }
        data[at] == NULL
    }

    /// Pushes a double, as `push(&Datum::Float(x))` does: in the short
    /// decimal form when it has one, else tag 7 (see the module docs).
    #[inline]
    pub fn push_float(&mut self, x: f64) {
        match short_decimal(x) {
            Some((scale, mut zigzag)) => {
                self.buf.push(DECIMAL + scale);
                while zigzag >= 0x80 {
                    self.buf.push((zigzag as u8) | 0x80);
                    zigzag >>= 7;
                }
                self.buf.push(zigzag as u8);
            }
            None => {
                self.buf.push(FLOAT);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
        }
    }

    /// Pushes an integer, as `push(&Datum::Int(i))` does.
    #[inline]
    pub fn push_int(&mut self, i: i64) {
        if let Ok(v) = i8::try_from(i) {
            self.buf.push(INT8);
            self.buf.push(v as u8);
        } else if let Ok(v) = i16::try_from(i) {
            self.buf.push(INT16);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else if let Ok(v) = i32::try_from(i) {
            self.buf.push(INT32);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else {
            self.buf.push(INT64);
            self.buf.extend_from_slice(&i.to_le_bytes());
        }
    }

    /// Text or a BLOB: a tag for the short or the long form, the length, the
    /// bytes.
    fn push_bytes(&mut self, short: u8, long: u8, bytes: &[u8]) {
        if let Ok(len) = u8::try_from(bytes.len()) {
            self.buf.push(short);
            self.buf.push(len);
        } else {
            self.buf.push(long);
            let len = u32::try_from(bytes.len()).expect("value longer than 4 GiB");
            self.buf.extend_from_slice(&len.to_le_bytes());
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Copies column `span` (from [`Row::spans`]) of `row` without decoding it.
    pub fn push_encoded(&mut self, row: &Row, span: (u32, u32)) {
        self.buf.extend_from_slice(&row.as_bytes()[span.0 as usize..span.1 as usize]);
    }

    /// Copies a whole row's columns.
    #[inline]
    pub fn extend_from_row(&mut self, row: &Row) {
        self.buf.extend_from_slice(row.as_bytes());
    }

    /// Copies a borrowed row's columns.
    pub fn extend_from_ref(&mut self, row: RowRef<'_>) {
        self.buf.extend_from_slice(row.as_bytes());
    }

    /// Copies the encoded bytes `start..end` of `row` (column spans from
    /// [`Row::spans`]) without decoding them.
    pub fn push_encoded_ref(&mut self, row: RowRef<'_>, start: u32, end: u32) {
        self.buf.extend_from_slice(&row.as_bytes()[start as usize..end as usize]);
    }

    // --- Several rows back to back ------------------------------------------
    //
    // `finish` copies a short row out of the buffer with a few wide loads
    // right after it was written by narrow stores: the loads wait until the
    // stores are done (a failed store-to-load forward, ~15 cycles each). An
    // operator that builds many rows per batch packs them back to back
    // instead, noting each one's `row_end`, and turns them into rows in one
    // pass after `seal`, when those stores are long done.

    /// The end of the row packed so far (the start of the next one) when
    /// several rows are packed back to back.
    #[inline]
    pub fn row_end(&self) -> usize {
        self.buf.len()
    }

    /// Drops back to `end` (a [`row_end`](Self::row_end)): the columns
    /// pushed after it are forgotten.
    pub fn truncate(&mut self, end: usize) {
        self.buf.truncate(end);
    }

    /// Ends a run of rows packed back to back: pads the buffer so that
    /// [`packed_row`](Self::packed_row) reads each short row with a few
    /// fixed-size loads.
    pub fn seal(&mut self) {
        self.buf.extend_from_slice(&[0; SEAL_PADDING]);
    }

    /// The encoded bytes `start..end` of rows packed back to back.
    #[inline]
    pub fn packed_bytes(&self, start: usize, end: usize) -> &[u8] {
        &self.buf[start..end]
    }

    /// The row packed at `start..end` (two [`row_end`](Self::row_end)s).
    pub fn packed_row(&self, start: usize, end: usize) -> Row {
        let mut row = Row::empty();
        self.packed_row_into(start, end, &mut row);
        row
    }

    /// Makes `row` the row packed at `start..end`, writing a short row's
    /// bytes straight into it (no temporary to copy, and so no wide load of
    /// bytes just stored narrowly).
    #[inline]
    pub fn packed_row_into(&self, start: usize, end: usize, row: &mut Row) {
        let len = end - start;
        match (self.buf.get(start..start + SEAL_PADDING), &mut row.repr) {
            (Some(window), Repr::Inline { len: row_len, bytes }) if len <= Row::INLINE => {
                // Whole-window loads, the bytes past `len` masked to zero.
                let word = |at: usize| u64::from_le_bytes(window[at..at + 8].try_into().expect("8 bytes"));
                let keep = |from: usize| match len.saturating_sub(from) {
                    0 => 0,
                    n if n >= 8 => u64::MAX,
                    n => (1u64 << (n * 8)) - 1,
                };
                *row_len = len as u8;
                bytes[..8].copy_from_slice(&(word(0) & keep(0)).to_le_bytes());
                bytes[8..16].copy_from_slice(&(word(8) & keep(8)).to_le_bytes());
                bytes[16..].copy_from_slice(&(word(16) & keep(16)).to_le_bytes()[..Row::INLINE - 16]);
            }
            _ => *row = Row::from_encoded(&self.buf[start..end]),
        }
    }

    /// Forgets every row packed back to back.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn finish(&mut self) -> Row {
        let len = self.buf.len();
        let row = if len <= Row::INLINE {
            // Pad to the inline size so the copy has a constant length (a
            // few moves instead of a call to memmove); the padding is zeros,
            // as inline rows require.
            self.buf.extend_from_slice(&[0; Row::INLINE]);
            let mut bytes = [0; Row::INLINE];
            bytes.copy_from_slice(&self.buf[..Row::INLINE]);
            Row { repr: Repr::Inline { len: len as u8, bytes } }
        } else {
            Row::from_encoded(&self.buf)
        };
        self.buf.clear();
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::Value;
    use proptest::prelude::*;

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Datum::Null),
            any::<bool>().prop_map(Datum::Bool),
            any::<i64>().prop_map(Datum::Int),
            (-1000i64..1000).prop_map(Datum::Int),
            any::<f64>().prop_map(Datum::Float),
            ".{0,300}".prop_map(Value::from),
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Datum::Numeric(numeric::from_parts(i128::from(m), s).unwrap())),
            any::<i32>().prop_map(Datum::Date),
            any::<i64>().prop_map(Datum::Timestamp),
            any::<i64>().prop_map(Datum::TimestampTz),
            any::<[u8; 16]>().prop_map(Datum::Uuid),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| Datum::Blob(b.into())),
            (any::<i32>(), any::<i32>(), any::<i64>()).prop_map(|(months, days, micros)| Datum::Interval(Interval {
                months,
                days,
                micros
            })),
        ]
    }

    proptest! {
        /// Rows packed back to back and made rows after `seal` equal the
        /// same rows packed one by one, short and long, with equal bytes
        /// (so equal hashes) and inline padding zero.
        #[test]
        fn rows_packed_back_to_back_equal_rows_packed_alone(
            rows in proptest::collection::vec(proptest::collection::vec(any_value(), 0..5), 1..12),
        ) {
            let mut packer = RowPacker::new();
            let mut spans = Vec::new();
            for values in &rows {
                let start = packer.row_end();
                for v in values {
                    packer.push(v);
                }
                spans.push((start, packer.row_end()));
            }
            packer.seal();
            let mut reused = Row::pack([Value::from("a text long enough to be kept on the heap, not inline")]);
            for (values, &(start, end)) in rows.iter().zip(&spans) {
                let alone = Row::pack(values);
                let row = packer.packed_row(start, end);
                prop_assert!(row == alone);
                prop_assert_eq!(row.as_bytes(), alone.as_bytes());
                packer.packed_row_into(start, end, &mut reused);
                prop_assert!(reused == alone);
            }
        }

        /// The spans of a row's first columns are the first of all its spans.
        #[test]
        fn spans_of_first_columns_are_a_prefix(values in proptest::collection::vec(any_value(), 0..8), count in 0usize..10) {
            let row = Row::pack(&values);
            let (mut all, mut first) = (Vec::new(), Vec::new());
            row.spans(&mut all);
            row.spans_of_first(count, &mut first);
            prop_assert_eq!(&first[..], &all[..count.min(all.len())]);
        }

        #[test]
        fn pack_then_unpack_round_trips(values in proptest::collection::vec(any_value(), 0..8)) {
            let row = Row::pack(&values);
            let back: Vec<Value> = row.iter().map(Datum::into_owned).collect();
            prop_assert_eq!(back.len(), values.len());
            for (a, b) in back.iter().zip(&values) {
                match (a, b) {
                    (Datum::Float(x), Datum::Float(y)) => prop_assert_eq!(x.to_bits(), y.to_bits()),
                    _ => prop_assert_eq!(a, b),
                }
            }
            let mut spans = Vec::new();
            row.spans(&mut spans);
            let mut packer = RowPacker::new();
            for s in &spans {
                packer.push_encoded(&row, *s);
            }
            prop_assert_eq!(packer.finish(), row);
        }
    }

    /// Doubles: any bits, and short decimals in particular.
    fn any_double() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            any::<u64>().prop_map(f64::from_bits),
            (any::<i32>(), 0u32..=6).prop_map(|(m, s)| f64::from(m) / 10f64.powi(s as i32)),
            (any::<i64>(), 0u32..=16).prop_map(|(m, s)| (m >> 10) as f64 / 10f64.powi(s as i32)),
            "-?[0-9]{1,9}\\.[0-9]{0,6}".prop_map(|t| t.parse::<f64>().unwrap()),
        ]
    }

    proptest! {
        // Cheap cases, many of them: every kind of double is drawn.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Every double packs and unpacks to the same bits; its encoding is a
        /// function of those bits (a fixed point of unpack-then-pack, so equal
        /// doubles get equal bytes whichever way they were made), never
        /// longer than tag 7; and its key form equals the key form of its
        /// packed column (integral doubles fold to integers).
        #[test]
        fn doubles_round_trip_with_one_encoding(x in any_double()) {
            let row = Row::pack([Datum::Float(x)]);
            let Datum::Float(back) = row.get(0) else { panic!("not a double: {row:?}") };
            prop_assert_eq!(back.to_bits(), x.to_bits());
            prop_assert!(row.as_bytes().len() <= 9);
            prop_assert_eq!(Row::pack([Datum::Float(f64::from_bits(x.to_bits()))]), row.clone());
            prop_assert_eq!(Row::pack(row.unpack()), row.clone());
            let wide = Row::pack([Datum::Float(x), Datum::text("after"), Datum::Int(3)]);
            prop_assert_eq!(wide.len(), 3);
            prop_assert_eq!(wide.get(1), Datum::text("after"));
            let (mut a, mut b) = (RowPacker::new(), RowPacker::new());
            a.push_key(&Datum::Float(x));
            b.push_key_column(&row, 0);
            let key = a.finish();
            prop_assert_eq!(b.finish(), key.clone());
            if x.fract() == 0.0 && x.abs() < 9.0e18 {
                prop_assert_eq!(key, Row::pack([Datum::Int(x as i64)]));
            } else if !RowRef::from(&row).has_key_variants() {
                prop_assert_eq!(key, row);
            }
        }
    }

    /// A row stored before the short decimal form (its doubles in tag 7)
    /// re-packs to the row packed today; other rows stay as they are.
    #[test]
    fn rows_of_the_old_encoding_repack() {
        let old = |x: f64| [&[FLOAT][..], &x.to_le_bytes()].concat();
        let stored = [&[INT8, 5][..], &old(12.5), &[TEXT8, 1, b'a'], &old(1.0 / 3.0), &old(-0.0)].concat();
        let row = RowRef::from_prefix(&stored, stored.len());
        let want = [Datum::Int(5), Datum::Float(12.5), Datum::text("a"), Datum::Float(1.0 / 3.0), Datum::Float(-0.0)];
        assert_eq!(row.repacked(), Row::pack(want));
        assert!(row.repacked().as_bytes().len() < stored.len());
        let today = Row::pack([Datum::Int(1), Datum::Float(0.25)]);
        assert_eq!(RowRef::from(&today).repacked(), today);
    }

    /// Short decimals' sizes, and the doubles that keep tag 7.
    #[test]
    fn short_decimal_doubles_are_short() {
        let bytes = |x: f64| Row::pack([Datum::Float(x)]).as_bytes().to_vec();
        assert_eq!(bytes(0.0), [18, 0]);
        assert_eq!(bytes(17.0), [18, 34]);
        assert_eq!(bytes(-1.0), [18, 1]);
        assert_eq!(bytes(0.07), [20, 14]);
        assert_eq!(bytes(0.5), [19, 10]);
        assert_eq!(bytes(12345.67).len(), 5);
        assert_eq!(bytes(104_949.5).len(), 5);
        assert_eq!(bytes(1e-15), [33, 2]);
        for x in [-0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 5e-324, 1.0 / 3.0, 0.1 + 0.2, 1e300, 2f64.powi(60)]
        {
            assert_eq!(bytes(x)[0], FLOAT, "{x}");
            assert_eq!(bytes(x)[1..], x.to_le_bytes());
        }
        // Integral doubles stay doubles in rows and fold to integers in keys.
        assert_ne!(Row::pack([Datum::Float(1.0)]), Row::pack([Datum::Int(1)]));
        let mut p = RowPacker::new();
        p.push_key(&Datum::Float(1.0));
        assert_eq!(p.finish(), Row::pack([Datum::Int(1)]));
        assert!(RowRef::from(&Row::pack([Datum::Float(2.0)])).has_key_variants());
        assert!(!RowRef::from(&Row::pack([Datum::Float(2.5)])).has_key_variants());
    }

    #[test]
    fn key_columns_pack_like_key_datums() {
        let row = Row::pack([Datum::Float(3.0), Datum::Null, Datum::text("x"), Datum::Float(0.5), Datum::Int(-7)]);
        let (mut a, mut b) = (RowPacker::new(), RowPacker::new());
        for (i, d) in row.iter().enumerate() {
            a.push_key(&d);
            assert_eq!(b.push_key_column(&row, i), d.is_null());
        }
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn key_packing_folds_sql_equal_numbers() {
        let mut p = RowPacker::new();
        p.push_key(&Datum::Float(3.0));
        let a = p.finish();
        p.push_key(&Datum::Int(3));
        assert_eq!(a, p.finish());
        p.push_key(&Datum::Float(-0.0));
        let z = p.finish();
        p.push_key(&Datum::Int(0));
        assert_eq!(z, p.finish());
    }

    #[test]
    fn key_packing_folds_equal_numerics() {
        let key = |d: Value| {
            let mut p = RowPacker::new();
            p.push_key(&d);
            p.finish()
        };
        let n = |s: &str| Datum::Numeric(numeric::parse(s).unwrap());
        assert_eq!(key(n("1.50")), key(n("1.5")));
        assert_eq!(key(n("3.00")), key(Datum::Int(3)));
        assert_eq!(key(n("-0.00")), key(Datum::Int(0)));
        assert_ne!(key(n("1.51")), key(n("1.5")));
        // Rows keep the display scale.
        assert_ne!(Row::pack([n("1.50")]), Row::pack([n("1.5")]));
        assert_eq!(Row::pack([n("1.50")]).get(0).to_string(), "1.50");
        let row = Row::pack([n("2.50"), Datum::Date(5), n("7")]);
        let (mut a, mut b) = (RowPacker::new(), RowPacker::new());
        for (i, d) in row.iter().enumerate() {
            a.push_key(&d);
            b.push_key_column(&row, i);
        }
        assert_eq!(a.finish(), b.finish());
    }

    /// Intervals: the row keeps the representation (`'1 day'` and `'24
    /// hours'` are different rows), keys fold equal spans to one form, and
    /// every existing tag decodes as before (the new tag is 17, at the end).
    #[test]
    fn interval_rows_and_keys() {
        let iv = |months, days, micros| Datum::Interval(Interval { months, days, micros });
        let day = iv(0, 1, 0);
        let hours = iv(0, 0, 86_400_000_000);
        assert_ne!(Row::pack([day.clone()]), Row::pack([hours.clone()]));
        assert_eq!(Row::pack([day.clone()]).as_bytes()[0], 17);
        assert_eq!(Row::pack([day.clone()]).get(0), day);
        let key = |d: &Value| {
            let mut p = RowPacker::new();
            p.push_key(d);
            p.finish()
        };
        assert_eq!(key(&day), key(&hours));
        assert_eq!(key(&iv(1, 0, 0)), key(&iv(0, 30, 0)));
        assert_ne!(key(&iv(1, 0, 0)), key(&iv(0, 31, 0)));
        let row = Row::pack([iv(2, -3, 7), Datum::Int(1), hours.clone()]);
        assert!(RowRef::from(&row).has_key_variants());
        let (mut a, mut b) = (RowPacker::new(), RowPacker::new());
        for (i, d) in row.iter().enumerate() {
            a.push_key(&d);
            b.push_key_column(&row, i);
        }
        assert_eq!(a.finish(), b.finish());
        // Existing encodings are unchanged.
        assert_eq!(Row::pack([Datum::Uuid([1; 16])]).as_bytes()[0], 14);
        assert_eq!(Row::pack([Datum::Blob(vec![1].into())]).as_bytes(), &[15, 1, 1]);
    }

    #[test]
    fn small_integers_are_small() {
        assert_eq!(Row::pack([Datum::Int(5)]).as_bytes().len(), 2);
        assert_eq!(Row::pack([Datum::Int(1 << 40)]).as_bytes().len(), 9);
        assert_eq!(Row::pack([Datum::text("abc")]).as_bytes().len(), 5);
    }

    #[test]
    fn short_rows_live_in_the_handle() {
        assert_eq!(std::mem::size_of::<Row>(), 24);
        let short = Row::pack([Datum::Int(1 << 40), Datum::Int(1 << 40)]);
        assert_eq!((short.as_bytes().len(), short.heap_size()), (18, 0));
        let long = Row::pack([Datum::text("a text longer than the inline limit")]);
        assert_eq!(long.heap_size(), long.as_bytes().len());
        assert_eq!(long.get(0), Datum::text("a text longer than the inline limit"));
        assert!(short < long && Row::empty() < short);
    }
}
