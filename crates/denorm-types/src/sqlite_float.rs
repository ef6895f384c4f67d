//! SQLite's conversion of a double to 18 decimal digits
//! (`sqlite3Fp2Convert10` and its `powerOfTen` tables, from SQLite 3.54's
//! `util.c`), ported bit for bit: SQLite does not round the 18th digit
//! correctly in every case, and its text of a double (`%!.17g`, `%.nf`,
//! `round()`) is made from these digits, so matching its output needs its
//! digits, not the exact ones.

const POWERS_OF_10_FIRST: i32 = -348;
const POWERS_OF_10_LAST: i32 = 347;

/// `1.0e+n`, shifted so that the top bit is set.
const BASE: [u64; 27] = [
    0x8000000000000000,
    0xa000000000000000,
    0xc800000000000000,
    0xfa00000000000000,
    0x9c40000000000000,
    0xc350000000000000,
    0xf424000000000000,
    0x9896800000000000,
    0xbebc200000000000,
    0xee6b280000000000,
    0x9502f90000000000,
    0xba43b74000000000,
    0xe8d4a51000000000,
    0x9184e72a00000000,
    0xb5e620f480000000,
    0xe35fa931a0000000,
    0x8e1bc9bf04000000,
    0xb1a2bc2ec5000000,
    0xde0b6b3a76400000,
    0x8ac7230489e80000,
    0xad78ebc5ac620000,
    0xd8d726b7177a8000,
    0x878678326eac9000,
    0xa968163f0a57b400,
    0xd3c21bcecceda100,
    0x84595161401484a0,
    0xa56fa5b99019a5c8,
];
/// `1.0e(27·(i−13))`, the most significant 64 bits.
const SCALE: [u64; 26] = [
    0x8049a4ac0c5811ae,
    0xcf42894a5dce35ea,
    0xa76c582338ed2621,
    0x873e4f75e2224e68,
    0xda7f5bf590966848,
    0xb080392cc4349dec,
    0x8e938662882af53e,
    0xe65829b3046b0afa,
    0xba121a4650e4ddeb,
    0x964e858c91ba2655,
    0xf2d56790ab41c2a2,
    0xc428d05aa4751e4c,
    0x9e74d1b791e07e48,
    0xcccccccccccccccc,
    0xcecb8f27f4200f3a,
    0xa70c3c40a64e6c51,
    0x86f0ac99b4e8dafd,
    0xda01ee641a708de9,
    0xb01ae745b101e9e4,
    0x8e41ade9fbebc27d,
    0xe5d3ef282a242e81,
    0xb9a74a0637ce2ee1,
    0x95f83d0a1fb69cd9,
    0xf24a01a73cf2dccf,
    0xc3b8358109e84f07,
    0x9e19db92b4e31ba9,
];
/// The next 32 bits of [`SCALE`].
const SCALE_LO: [u32; 26] = [
    0x205b896d, 0x52064cad, 0xaf2af2b8, 0x5a7744a7, 0xaf39a475, 0xbd8d794e, 0x547eb47b, 0x0cb4a5a3, 0x92f34d62,
    0x3a6a07f9, 0xfae27299, 0xaa97e14c, 0x775ea265, 0xcccccccc, 0x00000000, 0x999090b6, 0x69a028bb, 0xe80e6f48,
    0x5ec05dd0, 0x14588f14, 0x8f1668c9, 0x6d953e2c, 0x4abdaf10, 0xbc633b39, 0x0a862f81, 0x6c07a2c2,
];

fn multiply128(a: u64, b: u64) -> (u64, u64) {
    let r = u128::from(a) * u128::from(b);
    ((r >> 64) as u64, r as u64)
}

fn multiply160(a: u64, a_lo: u32, b: u64) -> (u64, u32) {
    let mut r = u128::from(a) * u128::from(b);
    r += (u128::from(a_lo) * u128::from(b)) >> 32;
    ((r >> 64) as u64, ((r >> 32) & 0xffff_ffff) as u32)
}

/// The most significant 64 bits of `10^p` (and the next 32).
fn power_of_ten(p: i32) -> (u64, u32) {
    debug_assert!((POWERS_OF_10_FIRST..=POWERS_OF_10_LAST).contains(&p));
    let (g, n) = if p < 0 {
        if p == -1 {
            return (SCALE[13], SCALE_LO[13]);
        }
        let (mut g, mut n) = (p / 27, p % 27);
        if n != 0 {
            g -= 1;
            n += 27;
        }
        (g, n)
    } else if p < 27 {
        return (BASE[p as usize], 0);
    } else {
        (p / 27, p % 27)
    };
    let i = (g + 13) as usize;
    let s = SCALE[i];
    if n == 0 {
        return (s, SCALE_LO[i]);
    }
    let (mut x, mut lo) = multiply160(s, SCALE_LO[i], BASE[n as usize]);
    if x & (1 << 63) == 0 {
        x = x << 1 | u64::from((lo >> 31) & 1);
        lo = (lo << 1) | 1;
    }
    (x, lo)
}

fn pwr10to2(p: i32) -> i32 {
    (p * 108853) >> 15
}

fn pwr2to10(p: i32) -> i32 {
    (p * 78913) >> 18
}

/// `x` (finite, > 0) as `(d, p)` with `x ≈ d·10^p` and `d` of at least
/// `n` digits (`1 ≤ n ≤ 18`), exactly as SQLite's `sqlite3Fp2Convert10`
/// computes them: rounded for `n = 18`, truncated below.
pub fn digits(x: f64, n: i32) -> (u64, i32) {
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let mut v = bits & 0x000f_ffff_ffff_ffff;
    let e = if exponent == 0 {
        let zeros = v.leading_zeros() as i32;
        v <<= zeros;
        -1074 - zeros
    } else {
        v = (v << 11) | (1 << 63);
        exponent - 1086
    };
    let p = n - 1 - pwr2to10(e + 63);
    let (h, _) = multiply128(v, power_of_ten(p).0);
    let d = if n == 18 {
        let h = h >> -(e + pwr10to2(p) + 2);
        (h + ((h << 1) & 2)) >> 1
    } else {
        h >> -(e + pwr10to2(p) + 1)
    };
    (d, -p)
}

/// Adds one unit in the last place of the decimal `digits` (most significant
/// first), carrying; a carry out of the first digit makes it `1` and moves
/// the decimal `point` one place right (`999` → `1000`).
pub fn round_up(digits: &mut Vec<u8>, point: &mut i32) {
    for d in digits.iter_mut().rev() {
        if *d == 9 {
            *d = 0;
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, 1);
    *point += 1;
}

/// [`digits`] as decimal digits (0–9, all of them) and the position of the
/// decimal point: `x ≈ 0.d₁d₂… × 10^point` (`FpDecode`'s `z` and `iDP`).
pub fn decimal(x: f64, n: i32) -> (Vec<u8>, i32) {
    let (d, p) = digits(x, n);
    let text = d.to_string();
    let point = text.len() as i32 + p;
    (text.bytes().map(|b| b - b'0').collect(), point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_of_exact_values() {
        assert_eq!(digits(1.0, 18), (100_000_000_000_000_000, -17));
        assert_eq!(digits(0.5, 18), (500_000_000_000_000_000, -18));
        assert_eq!(decimal(1234.5, 18).1, 4);
    }

    /// SQLite's digits are within one unit of the 18th digit of the value.
    #[test]
    fn digits_are_close_to_the_value() {
        for i in 1..2000u64 {
            let x = (i as f64) * 1.37e-3 + (i * i) as f64;
            let (d, p) = digits(x, 18);
            let exact: f64 = format!("{d}e{p}").parse().unwrap();
            assert!(((exact - x) / x).abs() < 1e-16, "{x}: {d}e{p}");
            assert!((100_000_000_000_000_000..2_000_000_000_000_000_000).contains(&d), "{x}: {d}");
        }
    }
}
