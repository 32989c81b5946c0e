//! Percentages written in configuration files (`20%`).

/// `20%` -> 0.2; a non-negative number followed by `%`.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let n = s
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("{s:?}: write a percentage such as 20%"))?;
    let v: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: not a percentage"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?}: must be a non-negative percentage"));
    }
    Ok(v / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("20%"), Ok(0.2));
        assert_eq!(parse_percent(" 12.5 % "), Ok(0.125));
        assert!(
            parse_percent("20")
                .unwrap_err()
                .contains("write a percentage")
        );
        assert!(parse_percent("x%").is_err());
        assert!(parse_percent("-5%").is_err());
    }
}
