//! The expanding series notation of promtool's unit tests and Prometheus's
//! test scripts: `1+2x3` is `1 3 5 7`, `_` a missing sample, `_x3` three,
//! `stale` a staleness marker, `5x2` is `5 5 5`, `1-1x2` counts down.

/// One step: a value, a staleness marker, or nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Value(f64),
    Stale,
    Missing,
}

fn number(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => s
            .parse::<f64>()
            .map_err(|_| format!("invalid number {s:?}")),
    }
}

/// Expands a values string into steps, one per interval from time 0.
pub fn expand(values: &str) -> Result<Vec<Step>, String> {
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        if tok.starts_with("{{") {
            return Err(format!(
                "native histogram samples are not supported: {tok:?}"
            ));
        }
        if tok == "_" {
            out.push(Step::Missing);
            continue;
        }
        if tok == "stale" {
            out.push(Step::Stale);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n
                .parse()
                .map_err(|_| format!("invalid repetition in {tok:?}"))?;
            out.extend(std::iter::repeat_n(Step::Missing, n));
            continue;
        }
        let Some((head, times)) = tok.rsplit_once('x') else {
            out.push(Step::Value(number(tok)?));
            continue;
        };
        let n: usize = times
            .parse()
            .map_err(|_| format!("invalid repetition count in {tok:?}"))?;
        // `a+b` or `a-b`: the sign after the first character splits start and step
        let split = head
            .char_indices()
            .skip(1)
            .find(|(i, c)| (*c == '+' || *c == '-') && !head[..*i].ends_with(['e', 'E']));
        let (start, step) = match split {
            Some((i, c)) => {
                let step = number(&head[i + 1..])?;
                (number(&head[..i])?, if c == '-' { -step } else { step })
            }
            None => (number(head)?, 0.0),
        };
        let mut v = start;
        out.push(Step::Value(v));
        for _ in 0..n {
            v += step;
            out.push(Step::Value(v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;

    #[test]
    fn expands_the_notation() {
        assert_eq!(
            expand("1+2x3").unwrap(),
            vec![Value(1.0), Value(3.0), Value(5.0), Value(7.0)]
        );
        assert_eq!(expand("5x2").unwrap(), vec![Value(5.0); 3]);
        assert_eq!(
            expand("10-1x2").unwrap(),
            vec![Value(10.0), Value(9.0), Value(8.0)]
        );
        assert_eq!(expand("-2+1x1").unwrap(), vec![Value(-2.0), Value(-1.0)]);
        assert_eq!(
            expand("0 _ stale _x2 1").unwrap(),
            vec![Value(0.0), Missing, Stale, Missing, Missing, Value(1.0)]
        );
        assert_eq!(
            expand("1e3 Inf").unwrap(),
            vec![Value(1000.0), Value(f64::INFINITY)]
        );
        assert!(expand("1+1xq").is_err());
        // `0x10` is zero eleven times, not hexadecimal
        assert_eq!(expand("0x10").unwrap().len(), 11);
        assert!(
            expand("{{schema:1}}")
                .unwrap_err()
                .contains("native histogram")
        );
    }
}
