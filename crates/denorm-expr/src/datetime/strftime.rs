//! `strftime`'s conversions (`%Y`, `%j`, `%W`, `%J`, …) over a computed
//! [`DateTime`], as date.c's `strftimeFunc` writes them.

use denorm_types::sqlite_float;

use super::{DateTime, DAY_MS, UNIX_EPOCH_MS};
use crate::scalar::fixed_digits;

/// `printf("%.16g")` of a positive double, as `%J` writes the julian day.
fn g16(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    // FpDecode(x, 16, 16): 17 truncated digits, rounded half up to 16.
    let (mut digits, mut point) = sqlite_float::decimal(x.abs(), 17);
    let round_up = digits.get(16).is_some_and(|&d| d >= 5);
    digits.truncate(16);
    if round_up {
        sqlite_float::round_up(&mut digits, &mut point);
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let sign = if x < 0.0 { "-" } else { "" };
    let exponent = point - 1;
    if !(-4..16).contains(&exponent) {
        let mantissa = if text.len() > 1 { format!("{}.{}", &text[..1], &text[1..]) } else { text };
        let e_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{e_sign}{:02}", exponent.abs());
    }
    let body = if point <= 0 {
        format!("0.{}{text}", "0".repeat(point.unsigned_abs() as usize))
    } else if text.len() > point as usize {
        format!("{}.{}", &text[..point as usize], &text[point as usize..])
    } else {
        format!("{text}{}", "0".repeat(point as usize - text.len()))
    };
    format!("{sign}{body}")
}

/// `strftime`'s format; `None` for an unknown conversion (SQLite: NULL).
pub(super) fn strftime(format: &str, x: &mut DateTime) -> Option<String> {
    x.compute_jd();
    x.compute_ymd_hms();
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // A trailing lone '%' is an unknown conversion (the terminating NUL).
        let cf = chars.next()?;
        out.push_str(&conversion(cf, x)?);
    }
    Some(out)
}

fn conversion(cf: char, x: &DateTime) -> Option<String> {
    let twelve = |h: i32| {
        if h > 12 {
            h - 12
        } else if h == 0 {
            12
        } else {
            h
        }
    };
    Some(match cf {
        'd' => format!("{:02}", x.day),
        'e' => format!("{:2}", x.day),
        'f' => {
            let s = fixed_digits(x.seconds.min(59.999), 3, 16);
            format!("{s:0>6}")
        }
        'F' => format!("{:04}-{:02}-{:02}", x.year, x.month, x.day),
        'G' => format!("{:04}", x.iso_thursday().year),
        'g' => format!("{:02}", x.iso_thursday().year % 100),
        'H' => format!("{:02}", x.hour),
        'k' => format!("{:2}", x.hour),
        'I' => format!("{:02}", twelve(x.hour)),
        'l' => format!("{:2}", twelve(x.hour)),
        'j' => format!("{:03}", x.days_after_jan01() + 1),
        'J' => g16(x.jd as f64 / DAY_MS as f64),
        'm' => format!("{:02}", x.month),
        'M' => format!("{:02}", x.minute),
        'p' => (if x.hour >= 12 { "PM" } else { "AM" }).to_string(),
        'P' => (if x.hour >= 12 { "pm" } else { "am" }).to_string(),
        'R' => format!("{:02}:{:02}", x.hour, x.minute),
        's' if x.subsec => {
            let v = (x.jd - UNIX_EPOCH_MS) as f64 / 1000.0;
            let sign = if v < 0.0 { "-" } else { "" };
            format!("{sign}{}", fixed_digits(v.abs(), 3, 16))
        }
        's' => (x.jd / 1000 - UNIX_EPOCH_MS / 1000).to_string(),
        'S' => format!("{:02}", x.seconds as i32),
        'T' => format!("{:02}:{:02}:{:02}", x.hour, x.minute, x.seconds as i32),
        'u' => {
            let d = x.days_after_sunday();
            (if d == 0 { 7 } else { d }).to_string()
        }
        'w' => x.days_after_sunday().to_string(),
        'U' => format!("{:02}", (x.days_after_jan01() - x.days_after_sunday() + 7) / 7),
        'V' => format!("{:02}", x.iso_thursday().days_after_jan01() / 7 + 1),
        'W' => format!("{:02}", (x.days_after_jan01() - x.days_after_monday() + 7) / 7),
        'Y' => format!("{:04}", x.year),
        '%' => "%".to_string(),
        _ => return None,
    })
}
