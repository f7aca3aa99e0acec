//! Size and nesting limits on the YAML and JSON the service reads (the configuration file and
//! file_sd files), checked before parsing: libyaml's scanner is quadratic in flow nesting depth
//! (`{a: {a: ...` of 200 KB takes most of a minute), and nothing the service reads nests deeply.

/// Deepest flow nesting (`[` / `{`) accepted; a file_sd group needs 3, a configuration a dozen.
pub const MAX_FLOW_DEPTH: usize = 64;
/// Largest configuration file.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Largest file_sd file.
pub const MAX_FILE_SD_BYTES: u64 = 256 << 20;

/// Refuse text whose flow collections nest deeper than [`MAX_FLOW_DEPTH`]. Brackets inside
/// quoted scalars and comments do not count; the scan is linear.
pub fn check_nesting(text: &str) -> Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut quote: Option<u8> = None;
    let mut comment = false;
    let mut prev = b'\n';
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            comment = false;
        } else if comment {
        } else if let Some(q) = quote {
            if c == b'\\' && q == b'"' {
                i += 1;
            } else if c == q {
                // '' inside a single-quoted scalar is an escaped quote.
                if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    quote = None;
                }
            }
        } else {
            match c {
                b'"' | b'\'' => quote = Some(c),
                b'#' if prev.is_ascii_whitespace() => comment = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err(format!(
                            "line {line}: collections nested deeper than {MAX_FLOW_DEPTH} levels"
                        ));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = c;
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_and_ordinary_text_passes() {
        let deep = "{a: ".repeat(MAX_FLOW_DEPTH + 1);
        assert!(check_nesting(&deep)
            .unwrap_err()
            .contains("nested deeper than 64"));
        let deep_list = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(check_nesting(&deep_list).is_err());
        let ok = "- targets: ['a:1', \"b[{{{{:2\"]\n  labels: {x: 'it''s [[[['}\n# [[[[[[[\n";
        assert_eq!(check_nesting(ok), Ok(()));
        let just = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(check_nesting(&just), Ok(()));
    }
}
