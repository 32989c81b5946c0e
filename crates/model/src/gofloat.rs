//! Go's float formatting, which Prometheus output follows: `strconv.FormatFloat`
//! with `'g'` (what `%v` prints) and `'f'`, shortest precision.

/// Shortest decimal digits and decimal exponent of a finite, non-zero `v`
/// (`v = 0.d1d2d3... * 10^dp`).
fn shortest_digits(v: f64) -> (String, i32) {
    // Rust's `{:e}` prints the shortest round-tripping digits: "1.2345e-7".
    let s = format!("{:e}", v.abs());
    let (mant, exp) = s.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0').to_string();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    (digits, exp + 1)
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`: `8e+01`, `1.5e-07`, `0e+00` (alert values in the API).
pub fn format_e(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0e+00");
    }
    let (digits, dp) = shortest_digits(v);
    let exp = dp - 1;
    let mant = if digits.len() > 1 {
        format!("{}.{}", &digits[..1], &digits[1..])
    } else {
        digits
    };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mant}e{esign}{:02}", exp.abs())
}

/// `strconv.FormatFloat(v, 'g', -1, 64)`: `1e+06`, `0.5`, `1.5e-07`, `123456`.
pub fn format_g(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, dp) = shortest_digits(v);
    let sign = if v < 0.0 { "-" } else { "" };
    let exp = dp - 1;
    // Go decides with precision 6 when printing the shortest digits
    if !(-4..6).contains(&exp) {
        // %e form with the shortest digits
        let mut out = String::from(sign);
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
        return out;
    }
    format!("{sign}{}", fixed_from_digits(&digits, dp))
}

fn fixed_from_digits(digits: &str, dp: i32) -> String {
    if dp <= 0 {
        format!("0.{}{}", "0".repeat((-dp) as usize), digits)
    } else if dp as usize >= digits.len() {
        format!("{}{}", digits, "0".repeat(dp as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    }
}

/// `strconv.FormatFloat(v, 'f', -1, 64)` with Prometheus's spellings of the
/// special values: `0.5`, `1000000`, `NaN`, `+Inf`.
pub fn format_f(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, dp) = shortest_digits(v);
    let sign = if v < 0.0 { "-" } else { "" };
    format!("{sign}{}", fixed_from_digits(&digits, dp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_go() {
        for (v, want) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.0000000000000216e-05, "1.0000000000000216e-05"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (100.0, "100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_g(v), want, "{v}");
        }
    }

    #[test]
    fn f_matches_go() {
        for (v, want) in [
            (1.0, "1"),
            (0.001, "0.001"),
            (1e6, "1000000"),
            (1.5e-7, "0.00000015"),
            (-3.25, "-3.25"),
        ] {
            assert_eq!(format_f(v), want, "{v}");
        }
    }

    #[test]
    fn e_format_matches_go() {
        assert_eq!(format_e(80.0), "8e+01");
        assert_eq!(format_e(0.00000015), "1.5e-07");
        assert_eq!(format_e(0.0), "0e+00");
        assert_eq!(format_e(-1234.5), "-1.2345e+03");
        assert_eq!(format_e(f64::NAN), "NaN");
        assert_eq!(format_e(1e100), "1e+100");
    }
}
