//! Kubernetes quantities (`resource.Quantity`) as the operator's generator turns them into
//! numbers: `nativeHistogramMinBucketFactor` is written as `AsApproximateFloat64()`, so the
//! served float is exactly that one (`"1.1"` is 11 × 0.1 = 1.1000000000000001, not 1.1).

use serde_json::Value;

/// `ParseQuantity` then `AsApproximateFloat64` for a quantity in its JSON form (a string or a
/// number). Only the forms `ParseQuantity` keeps as a 64-bit integer and a power of ten (its
/// fast path: at most 18 digits, no finer than nano; binary suffixes without a fraction) are
/// computed; any other form is an error rather than a float that might differ in its last bit.
pub fn approximate_f64(v: &Value) -> Result<f64, String> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("{other} is not a quantity")),
    };
    let s = text.as_str();
    let bad = || format!("{s:?} is not a quantity this allocator can convert");
    if s == "0" {
        return Ok(0.0);
    }
    let (positive, rest) = match s.as_bytes().first() {
        Some(b'-') => (false, &s[1..]),
        Some(b'+') => (true, &s[1..]),
        _ => (true, s),
    };
    let rest = rest.trim_start_matches('0');
    let digits = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n = digits(rest);
    let (num, rest) = rest.split_at(n);
    let num = if num.is_empty() { "0" } else { num };
    let (denom, suffix) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(digits(r)),
        None => ("", rest),
    };
    // The suffix: decimal SI, binary SI, or an exponent (`e3`, `E-2`).
    let (binary, exponent): (bool, i32) = match suffix {
        "" => (false, 0),
        "n" => (false, -9),
        "u" => (false, -6),
        "m" => (false, -3),
        "k" => (false, 3),
        "M" => (false, 6),
        "G" => (false, 9),
        "T" => (false, 12),
        "P" => (false, 15),
        "E" => (false, 18),
        "Ki" => (true, 10),
        "Mi" => (true, 20),
        "Gi" => (true, 30),
        "Ti" => (true, 40),
        "Pi" => (true, 50),
        "Ei" => (true, 60),
        e if e.len() > 1 && (e.starts_with('e') || e.starts_with('E')) => {
            (false, e[1..].parse().map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    let (value, scale) = if binary {
        let precision = 15 - num.len() as i32 - (exponent as f32 * 3.0 / 10.0) as i32 - 1;
        if !denom.is_empty() || precision < 0 {
            return Err(bad());
        }
        let v: i64 = num.parse().map_err(|_| bad())?;
        (v.checked_mul(1 << exponent).ok_or_else(bad)?, 0)
    } else {
        let precision = 18 - (num.len() + denom.len()) as i32;
        let scale = exponent - denom.len() as i32;
        if precision < 0 || scale < -9 {
            return Err(bad());
        }
        let v: i64 = format!("{num}{denom}").parse().map_err(|_| bad())?;
        (v, scale)
    };
    let value = if positive { value } else { -value };
    let base = value as f64;
    Ok(if scale == 0 {
        base
    } else {
        base * go_pow10(scale)
    })
}

/// Go's `math.Pow10`: products and quotients of two exactly rounded table powers, which is not
/// always the correctly rounded 10^n `powi` or parsing would give.
fn go_pow10(n: i32) -> f64 {
    let p = |k: i32| -> f64 { format!("1e{k}").parse().unwrap_or(f64::INFINITY) };
    match n {
        0..=308 => p(32 * (n / 32)) * p(n % 32),
        -323..=-1 => p(-32 * (-n / 32)) / p(-n % 32),
        n if n > 308 => f64::INFINITY,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_what_it_cannot_convert_exactly() {
        for bad in [
            json!("1.5Ki"),
            json!("1x"),
            json!("0.0000000001"),
            json!("1234567890123456789"),
            json!(true),
        ] {
            assert!(approximate_f64(&bad).is_err(), "{bad}");
        }
        // Plain integers and zero need no rounding at all.
        assert_eq!(approximate_f64(&json!(2)), Ok(2.0));
        assert_eq!(approximate_f64(&json!("0")), Ok(0.0));
        assert_eq!(approximate_f64(&json!("2Ki")), Ok(2048.0));
    }
}
