//! PostgreSQL's `to_char(timestamp, format)` for the common template
//! patterns, as PostgreSQL 15's `DCH_to_char` writes them:
//!
//! | patterns | output |
//! |---|---|
//! | `YYYY YYY YY Y`, `CC` | the year (BC years as their number), its last digits, the century |
//! | `IYYY IYY IY` | the ISO year, its last digits |
//! | `MM`, `DD`, `DDD`, `D`, `ID`, `Q`, `WW`, `W`, `IW`, `J` | month, day, day of year, weekday (Sunday 1), ISO weekday, quarter, week, week of month, ISO week, Julian day |
//! | `HH24`, `HH12`/`HH`, `MI`, `SS`, `MS`, `US`, `SSSS`/`SSSSS` | time fields, seconds past midnight |
//! | `AM PM A.M. P.M.`, `AD BC A.D. B.C.` (and lower case) | meridiem and era |
//! | `Month MONTH month`, `Mon MON mon`, `Day DAY day`, `Dy DY dy` | English names (full names blank-padded to 9) |
//! | `FM` prefix, `TH`/`th` suffix | no padding; ordinal suffix |
//! | `"text"`, `\` | literal text |
//!
//! Numeric patterns match in upper or lower case, names in the three cases
//! shown; anything else is copied, as PostgreSQL copies it.

use denorm_types::temporal;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The fields of a timestamp.
struct Fields {
    year: i64,
    month: u32,
    day: u32,
    days: i64,
    micros_of_day: i64,
}

impl Fields {
    fn new(t: i64) -> Fields {
        let days = t.div_euclid(MICROS_PER_DAY);
        let (year, month, day) = temporal::civil_from_days(days);
        Fields { year, month, day, days, micros_of_day: t.rem_euclid(MICROS_PER_DAY) }
    }
    /// The year as PostgreSQL prints it: 1 BC is 1.
    fn shown_year(&self) -> i64 {
        shown(self.year)
    }
    fn day_of_year(&self) -> i64 {
        self.days - temporal::days_from_civil(self.year, 1, 1) + 1
    }
    /// 0 = Sunday.
    fn weekday(&self) -> i64 {
        (self.days + 4).rem_euclid(7)
    }
    fn hour(&self) -> i64 {
        self.micros_of_day / 3_600_000_000
    }
    /// ISO 8601 (year, week).
    fn iso_week(&self) -> (i64, i64) {
        let iso_weekday = (self.weekday() + 6) % 7; // Monday 0
        let thursday = self.days - iso_weekday + 3;
        let (year, _, _) = temporal::civil_from_days(thursday);
        let first = temporal::days_from_civil(year, 1, 1);
        (year, (thursday - first) / 7 + 1)
    }
}

/// An astronomical year as PostgreSQL prints it (1 BC is 1).
fn shown(year: i64) -> i64 {
    if year <= 0 {
        1 - year
    } else {
        year
    }
}

/// One keyword: its text and how it writes.
#[derive(Clone, Copy)]
enum Key {
    Number(Num),
    Text(Word),
}

#[derive(Clone, Copy, PartialEq)]
enum Num {
    IsoYear4,
    IsoYear3,
    IsoYear2,
    WeekOfMonth,
    Year4,
    Year3,
    Year2,
    Year1,
    Century,
    Month,
    Day,
    DayOfYear,
    Weekday,
    IsoWeekday,
    Quarter,
    Week,
    IsoWeek,
    Julian,
    Hour24,
    Hour12,
    Minute,
    Second,
    Millis,
    Micros,
    SecondsOfDay,
}

#[derive(Clone, Copy)]
enum Case {
    Upper,
    Capital,
    Lower,
}

#[derive(Clone, Copy)]
enum Word {
    MonthName(Case),
    MonthShort(Case),
    DayName(Case),
    DayShort(Case),
    Meridiem { dots: bool, lower: bool },
    Era { dots: bool, lower: bool },
}

/// Keywords, longest first where one is a prefix of another.
const NUMBERS: &[(&str, Num)] = &[
    ("IYYY", Num::IsoYear4),
    ("IYY", Num::IsoYear3),
    ("IY", Num::IsoYear2),
    ("YYYY", Num::Year4),
    ("YYY", Num::Year3),
    ("YY", Num::Year2),
    ("Y", Num::Year1),
    ("CC", Num::Century),
    ("MM", Num::Month),
    ("DDD", Num::DayOfYear),
    ("DD", Num::Day),
    ("D", Num::Weekday),
    ("ID", Num::IsoWeekday),
    ("Q", Num::Quarter),
    ("WW", Num::Week),
    ("IW", Num::IsoWeek),
    ("J", Num::Julian),
    ("W", Num::WeekOfMonth),
    ("HH24", Num::Hour24),
    ("HH12", Num::Hour12),
    ("HH", Num::Hour12),
    ("MI", Num::Minute),
    ("SSSSS", Num::SecondsOfDay),
    ("SSSS", Num::SecondsOfDay),
    ("SS", Num::Second),
    ("MS", Num::Millis),
    ("US", Num::Micros),
];

fn word(rest: &str) -> Option<(usize, Word)> {
    use Case::*;
    const WORDS: &[(&str, Word)] = &[
        ("MONTH", Word::MonthName(Upper)),
        ("Month", Word::MonthName(Capital)),
        ("month", Word::MonthName(Lower)),
        ("MON", Word::MonthShort(Upper)),
        ("Mon", Word::MonthShort(Capital)),
        ("mon", Word::MonthShort(Lower)),
        ("DAY", Word::DayName(Upper)),
        ("Day", Word::DayName(Capital)),
        ("day", Word::DayName(Lower)),
        ("DY", Word::DayShort(Upper)),
        ("Dy", Word::DayShort(Capital)),
        ("dy", Word::DayShort(Lower)),
        ("A.M.", Word::Meridiem { dots: true, lower: false }),
        ("P.M.", Word::Meridiem { dots: true, lower: false }),
        ("a.m.", Word::Meridiem { dots: true, lower: true }),
        ("p.m.", Word::Meridiem { dots: true, lower: true }),
        ("AM", Word::Meridiem { dots: false, lower: false }),
        ("PM", Word::Meridiem { dots: false, lower: false }),
        ("am", Word::Meridiem { dots: false, lower: true }),
        ("pm", Word::Meridiem { dots: false, lower: true }),
        ("A.D.", Word::Era { dots: true, lower: false }),
        ("B.C.", Word::Era { dots: true, lower: false }),
        ("a.d.", Word::Era { dots: true, lower: true }),
        ("b.c.", Word::Era { dots: true, lower: true }),
        ("AD", Word::Era { dots: false, lower: false }),
        ("BC", Word::Era { dots: false, lower: false }),
        ("ad", Word::Era { dots: false, lower: true }),
        ("bc", Word::Era { dots: false, lower: true }),
    ];
    WORDS.iter().find(|(k, _)| rest.starts_with(k)).map(|(k, w)| (k.len(), *w))
}

/// The keyword at the start of `rest` and its length. Names are tried
/// before numbers (`MON` before `MI`… is not ambiguous, but `DAY`/`DY`
/// before `DD`/`D`).
fn keyword(rest: &str) -> Option<(usize, Key)> {
    if let Some((n, w)) = word(rest) {
        return Some((n, Key::Text(w)));
    }
    NUMBERS.iter().find_map(|(k, num)| {
        let upper = rest.starts_with(k);
        let lower = rest.get(..k.len()).is_some_and(|p| p == k.to_ascii_lowercase());
        (upper || lower).then_some((k.len(), Key::Number(*num)))
    })
}

/// `to_char(t, format)`; `None` (NULL) for an empty format, as PostgreSQL.
pub(crate) fn to_char(t: i64, format: &str) -> Option<String> {
    if format.is_empty() {
        return None;
    }
    let f = Fields::new(t);
    let mut out = String::new();
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix('"') {
            rest = quoted(after, &mut out);
            continue;
        }
        // Outside quotes only `\"` escapes (a quote); a lone backslash is
        // copied.
        if let Some(after) = rest.strip_prefix("\\\"") {
            out.push('"');
            rest = after;
            continue;
        }
        let (fill, body) = match rest.strip_prefix("FM").or_else(|| rest.strip_prefix("fm")) {
            Some(after) => (false, after),
            None => (true, rest),
        };
        let Some((n, key)) = keyword(body) else {
            if !fill {
                // A lone FM: PostgreSQL drops it.
                rest = body;
                continue;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        rest = &body[n..];
        match key {
            Key::Number(num) => {
                let (value, width) = number(&f, num);
                let digits = value.unsigned_abs().to_string();
                let sign = if value < 0 { "-" } else { "" };
                out.push_str(sign);
                if fill && digits.len() < width {
                    out.extend(std::iter::repeat_n('0', width - digits.len()));
                }
                out.push_str(&digits);
                if let Some(after) = rest.strip_prefix("TH").or_else(|| rest.strip_prefix("th")) {
                    let suffix = ordinal(value);
                    out.push_str(&if rest.starts_with("TH") {
                        suffix.to_ascii_uppercase()
                    } else {
                        suffix.to_string()
                    });
                    rest = after;
                }
            }
            Key::Text(w) => text(&f, w, fill, &mut out),
        }
    }
    Some(out)
}

/// Copies a double-quoted literal (backslash escapes the next character);
/// returns what follows the closing quote.
fn quoted<'a>(mut rest: &'a str, out: &mut String) -> &'a str {
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '"' => return rest,
            '\\' => {
                if let Some(next) = rest.chars().next() {
                    out.push(next);
                    rest = &rest[next.len_utf8()..];
                }
            }
            c => out.push(c),
        }
    }
    rest
}

fn ordinal(value: i64) -> &'static str {
    let v = value.unsigned_abs();
    match (v % 100, v % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

/// A numeric field's value and its zero-padded width.
fn number(f: &Fields, num: Num) -> (i64, usize) {
    let year = f.shown_year();
    let micros = f.micros_of_day;
    match num {
        Num::IsoYear4 => (shown(f.iso_week().0), 4),
        Num::IsoYear3 => (shown(f.iso_week().0) % 1000, 3),
        Num::IsoYear2 => (shown(f.iso_week().0) % 100, 2),
        Num::WeekOfMonth => ((i64::from(f.day) - 1) / 7 + 1, 1),
        Num::Year4 => (year, 4),
        Num::Year3 => (year % 1000, 3),
        Num::Year2 => (year % 100, 2),
        Num::Year1 => (year % 10, 1),
        Num::Century => {
            // PostgreSQL: (year + 99) / 100 for AD, negative for BC.
            if f.year > 0 {
                ((f.year + 99) / 100, 2)
            } else {
                (-((year + 99) / 100), 2)
            }
        }
        Num::Month => (i64::from(f.month), 2),
        Num::Day => (i64::from(f.day), 2),
        Num::DayOfYear => (f.day_of_year(), 3),
        Num::Weekday => (f.weekday() + 1, 1),
        Num::IsoWeekday => ((f.weekday() + 6) % 7 + 1, 1),
        Num::Quarter => ((i64::from(f.month) - 1) / 3 + 1, 1),
        Num::Week => ((f.day_of_year() - 1) / 7 + 1, 2),
        Num::IsoWeek => (f.iso_week().1, 2),
        Num::Julian => (f.days + 2_440_588, 1),
        Num::Hour24 => (f.hour(), 2),
        Num::Hour12 => (if f.hour() % 12 == 0 { 12 } else { f.hour() % 12 }, 2),
        Num::Minute => (micros / 60_000_000 % 60, 2),
        Num::Second => (micros / 1_000_000 % 60, 2),
        Num::Millis => (micros / 1_000 % 1_000, 3),
        Num::Micros => (micros % 1_000_000, 6),
        Num::SecondsOfDay => (micros / 1_000_000, 1),
    }
}

fn cased(name: &str, case: Case) -> String {
    match case {
        Case::Upper => name.to_ascii_uppercase(),
        Case::Capital => name.to_string(),
        Case::Lower => name.to_ascii_lowercase(),
    }
}

fn text(f: &Fields, w: Word, fill: bool, out: &mut String) {
    let padded = |name: String, out: &mut String| {
        if fill {
            out.push_str(&format!("{name:<9}"));
        } else {
            out.push_str(&name);
        }
    };
    let month = MONTHS[(f.month as usize).saturating_sub(1) % 12];
    let day = DAYS[f.weekday() as usize];
    match w {
        Word::MonthName(case) => padded(cased(month, case), out),
        Word::MonthShort(case) => out.push_str(&cased(&month[..3], case)),
        Word::DayName(case) => padded(cased(day, case), out),
        Word::DayShort(case) => out.push_str(&cased(&day[..3], case)),
        Word::Meridiem { dots, lower } => {
            let pm = f.hour() >= 12;
            let s = match (pm, dots) {
                (false, false) => "AM",
                (true, false) => "PM",
                (false, true) => "A.M.",
                (true, true) => "P.M.",
            };
            out.push_str(&if lower { s.to_ascii_lowercase() } else { s.to_string() });
        }
        Word::Era { dots, lower } => {
            let bc = f.year <= 0;
            let s = match (bc, dots) {
                (false, false) => "AD",
                (true, false) => "BC",
                (false, true) => "A.D.",
                (true, true) => "B.C.",
            };
            out.push_str(&if lower { s.to_ascii_lowercase() } else { s.to_string() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No format and no timestamp panic.
        #[test]
        fn never_panics(format in "[\\\"FMTHYDIWQJSUAPBCmonthdayMSHI24.é ]{0,30}", t in any::<i64>()) {
            let _ = to_char(t, &format);
        }
    }

    #[test]
    fn common_patterns() {
        let t = temporal::parse_timestamp("2024-03-05 14:07:09.123456").unwrap();
        assert_eq!(to_char(t, "YYYY-MM-DD HH24:MI:SS.US").as_deref(), Some("2024-03-05 14:07:09.123456"));
        assert_eq!(to_char(t, "Day, DD Month YYYY").as_deref(), Some("Tuesday  , 05 March     2024"));
        assert_eq!(to_char(t, "FMDay, FMDDth FMMonth").as_deref(), Some("Tuesday, 5th March"));
        assert_eq!(to_char(t, "HH12:MI am \"at\" Q").as_deref(), Some("02:07 pm at 1"));
        assert_eq!(to_char(t, "yyyy/mm/dd").as_deref(), Some("2024/03/05"));
        assert_eq!(to_char(t, ""), None);
    }
}
