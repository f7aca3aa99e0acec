//! Relabel regexes as Prometheus compiles them: Go's `regexp/syntax` (RE2 with Perl flags),
//! translated into the regex crate's syntax with the same meaning, or refused where Go refuses.
//!
//! The two dialects differ in ways that would silently change labels: `\d`, `\w`, `\s` and `\b`
//! are ASCII in Go and Unicode in Rust; `[a&&b]` is three literals in Go and an intersection in
//! Rust; `\<` is a literal `<` in Go and a word boundary in Rust; Go reads `x{` as literals,
//! octal escapes, `\Q...\E`, `\p{^Greek}`, names starting with a digit and duplicate group names,
//! which Rust refuses; Rust accepts flags (`x`, `u`, `R`), set operations, `\u0041` and property
//! names (`\p{Alphabetic}`) that Go refuses. So the pattern is parsed here the way Go's parser
//! reads it (the same grammar and the same errors) and re-written with only constructs that mean
//! the same in Rust: literals as `\x{..}` escapes, Perl classes as explicit ASCII sets, capture
//! groups unnamed (their names are kept here, for the `$name` expansion of templates).

/// A pattern in Rust's syntax, with Go's group names (index 0 is the whole match; "" unnamed).
#[derive(Debug, Clone)]
pub struct Translated {
    pub pattern: String,
    pub names: Vec<String>,
}

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Go refuses it too (the message names Go's error).
    Invalid(String),
    /// Go accepts it, but it cannot be run with the same meaning here.
    Unsupported(String),
}

/// Go's `maxHeight` is 1000 parse-tree levels; deeper than this many groups is refused here
/// rather than risk accepting what Go refuses (or the reverse).
const MAX_DEPTH: usize = 400;

/// Go's posixGroup names (`[:alpha:]`, ...); Rust's ASCII classes have the same names and sets.
const POSIX: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Unicode class names Go (1.26, Unicode 15.0.0) accepts after its `canonicalName` (first
/// letter upper, the rest lower, `_`, `-` and spaces removed), with the name Rust knows the same
/// set by. Go looks up categories, scripts and category aliases; scripts whose names contain
/// `_` are unreachable in Go (their canonical form is not a key), so they are absent here.
const UNICODE_NAMES: &[(&str, &str)] = &[
    ("Adlam", "Adlam"),
    ("Ahom", "Ahom"),
    ("Any", "Any"),
    ("Arabic", "Arabic"),
    ("Armenian", "Armenian"),
    ("Ascii", "ASCII"),
    ("Assigned", "Assigned"),
    ("Avestan", "Avestan"),
    ("Balinese", "Balinese"),
    ("Bamum", "Bamum"),
    ("Batak", "Batak"),
    ("Bengali", "Bengali"),
    ("Bhaiksuki", "Bhaiksuki"),
    ("Bopomofo", "Bopomofo"),
    ("Brahmi", "Brahmi"),
    ("Braille", "Braille"),
    ("Buginese", "Buginese"),
    ("Buhid", "Buhid"),
    ("C", "C"),
    ("Carian", "Carian"),
    ("Casedletter", "LC"),
    ("Cc", "Cc"),
    ("Cf", "Cf"),
    ("Chakma", "Chakma"),
    ("Cham", "Cham"),
    ("Cherokee", "Cherokee"),
    ("Chorasmian", "Chorasmian"),
    ("Closepunctuation", "Pe"),
    ("Cn", "Cn"),
    ("Cntrl", "Cc"),
    ("Co", "Co"),
    ("Combiningmark", "M"),
    ("Common", "Common"),
    ("Connectorpunctuation", "Pc"),
    ("Control", "Cc"),
    ("Coptic", "Coptic"),
    ("Cs", "Cs"),
    ("Cuneiform", "Cuneiform"),
    ("Currencysymbol", "Sc"),
    ("Cypriot", "Cypriot"),
    ("Cyrillic", "Cyrillic"),
    ("Dashpunctuation", "Pd"),
    ("Decimalnumber", "Nd"),
    ("Deseret", "Deseret"),
    ("Devanagari", "Devanagari"),
    ("Digit", "Nd"),
    ("Dogra", "Dogra"),
    ("Duployan", "Duployan"),
    ("Elbasan", "Elbasan"),
    ("Elymaic", "Elymaic"),
    ("Enclosingmark", "Me"),
    ("Ethiopic", "Ethiopic"),
    ("Finalpunctuation", "Pf"),
    ("Format", "Cf"),
    ("Georgian", "Georgian"),
    ("Glagolitic", "Glagolitic"),
    ("Gothic", "Gothic"),
    ("Grantha", "Grantha"),
    ("Greek", "Greek"),
    ("Gujarati", "Gujarati"),
    ("Gurmukhi", "Gurmukhi"),
    ("Han", "Han"),
    ("Hangul", "Hangul"),
    ("Hanunoo", "Hanunoo"),
    ("Hatran", "Hatran"),
    ("Hebrew", "Hebrew"),
    ("Hiragana", "Hiragana"),
    ("Inherited", "Inherited"),
    ("Initialpunctuation", "Pi"),
    ("Javanese", "Javanese"),
    ("Kaithi", "Kaithi"),
    ("Kannada", "Kannada"),
    ("Katakana", "Katakana"),
    ("Kawi", "Kawi"),
    ("Kharoshthi", "Kharoshthi"),
    ("Khmer", "Khmer"),
    ("Khojki", "Khojki"),
    ("Khudawadi", "Khudawadi"),
    ("L", "L"),
    ("Lao", "Lao"),
    ("Latin", "Latin"),
    ("Lc", "LC"),
    ("Lepcha", "Lepcha"),
    ("Letter", "L"),
    ("Letternumber", "Nl"),
    ("Limbu", "Limbu"),
    ("Lineseparator", "Zl"),
    ("Lisu", "Lisu"),
    ("Ll", "Ll"),
    ("Lm", "Lm"),
    ("Lo", "Lo"),
    ("Lowercaseletter", "Ll"),
    ("Lt", "Lt"),
    ("Lu", "Lu"),
    ("Lycian", "Lycian"),
    ("Lydian", "Lydian"),
    ("M", "M"),
    ("Mahajani", "Mahajani"),
    ("Makasar", "Makasar"),
    ("Malayalam", "Malayalam"),
    ("Mandaic", "Mandaic"),
    ("Manichaean", "Manichaean"),
    ("Marchen", "Marchen"),
    ("Mark", "M"),
    ("Mathsymbol", "Sm"),
    ("Mc", "Mc"),
    ("Me", "Me"),
    ("Medefaidrin", "Medefaidrin"),
    ("Miao", "Miao"),
    ("Mn", "Mn"),
    ("Modi", "Modi"),
    ("Modifierletter", "Lm"),
    ("Modifiersymbol", "Sk"),
    ("Mongolian", "Mongolian"),
    ("Mro", "Mro"),
    ("Multani", "Multani"),
    ("Myanmar", "Myanmar"),
    ("N", "N"),
    ("Nabataean", "Nabataean"),
    ("Nandinagari", "Nandinagari"),
    ("Nd", "Nd"),
    ("Newa", "Newa"),
    ("Nko", "Nko"),
    ("Nl", "Nl"),
    ("No", "No"),
    ("Nonspacingmark", "Mn"),
    ("Number", "N"),
    ("Nushu", "Nushu"),
    ("Ogham", "Ogham"),
    ("Openpunctuation", "Ps"),
    ("Oriya", "Oriya"),
    ("Osage", "Osage"),
    ("Osmanya", "Osmanya"),
    ("Other", "C"),
    ("Otherletter", "Lo"),
    ("Othernumber", "No"),
    ("Otherpunctuation", "Po"),
    ("Othersymbol", "So"),
    ("P", "P"),
    ("Palmyrene", "Palmyrene"),
    ("Paragraphseparator", "Zp"),
    ("Pc", "Pc"),
    ("Pd", "Pd"),
    ("Pe", "Pe"),
    ("Pf", "Pf"),
    ("Phoenician", "Phoenician"),
    ("Pi", "Pi"),
    ("Po", "Po"),
    ("Privateuse", "Co"),
    ("Ps", "Ps"),
    ("Punct", "P"),
    ("Punctuation", "P"),
    ("Rejang", "Rejang"),
    ("Runic", "Runic"),
    ("S", "S"),
    ("Samaritan", "Samaritan"),
    ("Saurashtra", "Saurashtra"),
    ("Sc", "Sc"),
    ("Separator", "Z"),
    ("Sharada", "Sharada"),
    ("Shavian", "Shavian"),
    ("Siddham", "Siddham"),
    ("Sinhala", "Sinhala"),
    ("Sk", "Sk"),
    ("Sm", "Sm"),
    ("So", "So"),
    ("Sogdian", "Sogdian"),
    ("Soyombo", "Soyombo"),
    ("Spaceseparator", "Zs"),
    ("Spacingmark", "Mc"),
    ("Sundanese", "Sundanese"),
    ("Surrogate", "Cs"),
    ("Symbol", "S"),
    ("Syriac", "Syriac"),
    ("Tagalog", "Tagalog"),
    ("Tagbanwa", "Tagbanwa"),
    ("Takri", "Takri"),
    ("Tamil", "Tamil"),
    ("Tangsa", "Tangsa"),
    ("Tangut", "Tangut"),
    ("Telugu", "Telugu"),
    ("Thaana", "Thaana"),
    ("Thai", "Thai"),
    ("Tibetan", "Tibetan"),
    ("Tifinagh", "Tifinagh"),
    ("Tirhuta", "Tirhuta"),
    ("Titlecaseletter", "Lt"),
    ("Toto", "Toto"),
    ("Ugaritic", "Ugaritic"),
    ("Unassigned", "Cn"),
    ("Uppercaseletter", "Lu"),
    ("Vai", "Vai"),
    ("Vithkuqi", "Vithkuqi"),
    ("Wancho", "Wancho"),
    ("Yezidi", "Yezidi"),
    ("Yi", "Yi"),
    ("Z", "Z"),
    ("Zl", "Zl"),
    ("Zp", "Zp"),
    ("Zs", "Zs"),
];

/// What the previous token was, for Go's repetition rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Start, `(` or `|`: nothing to repeat.
    Nothing,
    /// An atom (its repeat-count weight, see `repeat_weight`).
    Atom(u64),
    /// A repetition operator (a second one is Go's "invalid nested repetition operator").
    Repeat(u64),
    /// A flags-only group `(?i)` after an atom: Go repeats the atom before it.
    Flags,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    out: String,
    names: Vec<String>,
    /// Per open group: the weight of its heaviest atom so far.
    groups: Vec<u64>,
    last: Last,
}

fn invalid<T>(code: &str, expr: &str) -> Result<T, Problem> {
    Err(Problem::Invalid(format!(
        "error parsing regexp: {code}: `{expr}`"
    )))
}

fn unsupported<T>(what: String) -> Result<T, Problem> {
    Err(Problem::Unsupported(what))
}

/// Translate a whole pattern (Prometheus' anchored form included by the caller).
pub fn translate(pattern: &str) -> Result<Translated, Problem> {
    let mut p = Parser {
        src: pattern,
        pos: 0,
        out: String::with_capacity(pattern.len() * 2),
        names: vec![String::new()],
        groups: vec![1],
        last: Last::Nothing,
    };
    p.parse()?;
    Ok(Translated {
        pattern: p.out,
        names: p.names,
    })
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn atom(&mut self, weight: u64) {
        let top = self.groups.last_mut().expect("outer level");
        *top = (*top).max(weight);
        self.last = Last::Atom(weight);
    }

    fn parse(&mut self) -> Result<(), Problem> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                '(' => self.open()?,
                '|' => {
                    self.pos += 1;
                    self.out.push('|');
                    self.last = Last::Nothing;
                }
                ')' => {
                    self.pos += 1;
                    if self.groups.len() == 1 {
                        return invalid("unexpected )", self.src);
                    }
                    let w = self.groups.pop().expect("an open group");
                    self.out.push(')');
                    self.atom(w);
                }
                '^' | '$' | '.' => {
                    self.pos += 1;
                    self.out.push(c);
                    self.atom(1);
                }
                '[' => {
                    self.class()?;
                    self.atom(1);
                }
                '*' | '+' | '?' => {
                    self.pos += 1;
                    self.repeat(start, c.to_string(), None)?;
                }
                '{' => match parse_count(self.rest()) {
                    None => {
                        self.pos += 1;
                        literal(&mut self.out, '{');
                        self.atom(1);
                    }
                    Some((min, max, len)) => {
                        let text = self.rest()[..len].to_owned();
                        self.pos += len;
                        let too_big = |n: i64| n > 1000;
                        if min < 0 || too_big(min) || too_big(max) || max >= 0 && min > max {
                            return invalid("invalid repeat count", &text);
                        }
                        self.repeat(start, text, Some((min, max)))?;
                    }
                },
                '\\' => self.escape()?,
                _ => {
                    self.pos += c.len_utf8();
                    literal(&mut self.out, c);
                    self.atom(1);
                }
            }
        }
        if self.groups.len() > 1 {
            return invalid("missing closing )", self.src);
        }
        Ok(())
    }

    /// `*`, `+`, `?` or a counted repetition, with an optional `?` (non-greedy), by Go's rules:
    /// nothing to repeat and a repetition of a repetition are errors; a counted repetition may
    /// not nest counts whose product exceeds 1000 (Go's `repeatIsValid`).
    fn repeat(
        &mut self,
        start: usize,
        mut op: String,
        count: Option<(i64, i64)>,
    ) -> Result<(), Problem> {
        if self.peek() == Some('?') {
            self.pos += 1;
            op.push('?');
        }
        let sub = match self.last {
            Last::Repeat(_) => {
                return invalid(
                    "invalid nested repetition operator",
                    &self.src[start..self.pos],
                )
            }
            Last::Nothing => {
                return invalid(
                    "missing argument to repetition operator",
                    &self.src[start..self.pos],
                )
            }
            Last::Flags => {
                return unsupported(format!(
                "the repetition {:?} after a flags group (Go repeats the item before the group)",
                &self.src[start..self.pos]
            ))
            }
            Last::Atom(w) => w,
        };
        let weight = match count {
            None => sub,
            Some((min, max)) => {
                if max == 0 {
                    1
                } else {
                    let m = if max < 0 { min } else { max };
                    let w = sub.saturating_mul(m.max(1) as u64);
                    if (min >= 2 || max >= 2) && w > 1000 {
                        return invalid("invalid repeat count", &self.src[start..self.pos]);
                    }
                    w
                }
            }
        };
        self.out.push_str(&op);
        let top = self.groups.last_mut().expect("outer level");
        *top = (*top).max(weight);
        self.last = Last::Repeat(weight);
        Ok(())
    }

    /// `(`: a capture, a named capture or a flags group (Go's `parsePerlFlags`).
    fn open(&mut self) -> Result<(), Problem> {
        let rest = self.rest();
        if !rest.starts_with("(?") {
            self.pos += 1;
            self.push_group("(", String::new())?;
            return Ok(());
        }
        let t = &rest[2..];
        let named = if let Some(n) = t.strip_prefix("P<") {
            Some((n, 4))
        } else if t.starts_with("P=") || t.starts_with("P>") {
            return invalid("invalid named capture", &rest[..4]);
        } else {
            t.strip_prefix('<').map(|n| (n, 3))
        };
        if let Some((n, begin)) = named {
            let Some(end) = n.find('>') else {
                return invalid("invalid named capture", rest);
            };
            let name = &n[..end];
            if name.is_empty() || !name.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric()) {
                return invalid("invalid named capture", &rest[..begin + end + 1]);
            }
            let name = name.to_owned();
            self.pos += begin + end + 1;
            return self.push_group("(", name);
        }
        // Flags: i, m, s, U, one '-', then ':' (a group) or ')' (for the rest of this group).
        let mut on = String::new();
        let mut off = String::new();
        let mut negated = false;
        let mut saw = false;
        let mut len = 2;
        for c in t.chars() {
            len += c.len_utf8();
            match c {
                'i' | 'm' | 's' | 'U' => {
                    saw = true;
                    let (set, other) = if negated {
                        (&mut off, &mut on)
                    } else {
                        (&mut on, &mut off)
                    };
                    if !set.contains(c) {
                        set.push(c);
                    }
                    other.retain(|x| x != c);
                }
                '-' if !negated => {
                    negated = true;
                    saw = false;
                }
                ':' | ')' if !negated || saw => {
                    let flags = match (on.is_empty(), off.is_empty()) {
                        (true, true) => String::new(),
                        (false, true) => on.clone(),
                        _ => format!("{on}-{off}"),
                    };
                    self.pos += len;
                    if c == ':' {
                        let open = if flags.is_empty() {
                            "(?:".to_owned()
                        } else {
                            format!("(?{flags}:")
                        };
                        return self.push_group_open(&open);
                    }
                    if !flags.is_empty() {
                        self.out.push_str(&format!("(?{flags})"));
                    }
                    if matches!(self.last, Last::Atom(_) | Last::Repeat(_) | Last::Flags) {
                        self.last = Last::Flags;
                    }
                    return Ok(());
                }
                _ => break,
            }
        }
        invalid(
            "invalid or unsupported Perl syntax",
            &rest[..len.min(rest.len())],
        )
    }

    fn push_group(&mut self, open: &str, name: String) -> Result<(), Problem> {
        self.names.push(name);
        self.push_group_open(open)
    }

    fn push_group_open(&mut self, open: &str) -> Result<(), Problem> {
        if self.groups.len() > MAX_DEPTH {
            return unsupported(format!("groups nested more than {MAX_DEPTH} deep"));
        }
        self.out.push_str(open);
        self.groups.push(1);
        self.last = Last::Nothing;
        Ok(())
    }

    /// A backslash outside a class.
    fn escape(&mut self) -> Result<(), Problem> {
        let rest = self.rest();
        let mut it = rest.chars();
        it.next();
        match it.next() {
            Some('A') => return self.simple(2, "\\A"),
            Some('z') => return self.simple(2, "\\z"),
            // Go's word boundaries are ASCII.
            Some('b') => return self.simple(2, "(?-u:\\b)"),
            Some('B') => return self.simple(2, "(?-u:\\B)"),
            Some('C') => return invalid("invalid escape sequence", "\\C"),
            Some('Q') => {
                let body = &rest[2..];
                let (lit, used) = match body.find("\\E") {
                    Some(i) => (&body[..i], 2 + i + 2),
                    None => (body, rest.len()),
                };
                let lit = lit.to_owned();
                self.pos += used;
                for c in lit.chars() {
                    literal(&mut self.out, c);
                    self.atom(1);
                }
                return Ok(());
            }
            _ => {}
        }
        if let Some((class, len)) = unicode_class(rest)? {
            self.pos += len;
            self.out.push_str(&class);
            self.atom(1);
            return Ok(());
        }
        if let Some((class, _)) = perl_class(rest) {
            self.pos += 2;
            self.out.push('[');
            self.out.push_str(class);
            self.out.push(']');
            self.atom(1);
            return Ok(());
        }
        let (c, len) = parse_escape(rest)?;
        self.pos += len;
        literal(&mut self.out, c);
        self.atom(1);
        Ok(())
    }

    fn simple(&mut self, len: usize, out: &str) -> Result<(), Problem> {
        self.pos += len;
        self.out.push_str(out);
        self.atom(1);
        Ok(())
    }

    /// A bracketed class (Go's `parseClass`): `]` first is a literal, `[` is a literal unless it
    /// starts a POSIX class, ranges must be ordered, escapes as outside.
    fn class(&mut self) -> Result<(), Problem> {
        let whole = self.rest().to_owned();
        self.pos += 1;
        let mut out = String::from("[");
        if self.peek() == Some('^') {
            self.pos += 1;
            out.push('^');
        }
        let mut first = true;
        loop {
            let t = self.rest();
            if t.starts_with(']') && !first {
                self.pos += 1;
                out.push(']');
                break;
            }
            first = false;
            if t.len() > 2 && t.starts_with("[:") {
                if let Some(i) = t[2..].find(":]") {
                    let name = &t[..i + 4];
                    let inner = &name[2..name.len() - 2];
                    let plain = inner.strip_prefix('^').unwrap_or(inner);
                    if !POSIX.contains(&plain) {
                        return invalid("invalid character class range", name);
                    }
                    out.push_str(name);
                    self.pos += name.len();
                    continue;
                }
            }
            if let Some((class, len)) = unicode_class(t)? {
                out.push_str(&class);
                self.pos += len;
                continue;
            }
            if let Some((class, negated)) = perl_class(t) {
                if negated {
                    out.push('[');
                    out.push_str(class);
                    out.push(']');
                } else {
                    out.push_str(class);
                }
                self.pos += 2;
                continue;
            }
            let range_start = self.pos;
            let lo = self.class_char(&whole)?;
            let mut hi = lo;
            let t = self.rest();
            if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
                self.pos += 1;
                hi = self.class_char(&whole)?;
                if hi < lo {
                    return invalid(
                        "invalid character class range",
                        &self.src[range_start..self.pos],
                    );
                }
            }
            literal(&mut out, lo);
            if hi != lo {
                out.push('-');
                literal(&mut out, hi);
            }
        }
        self.out.push_str(&out);
        Ok(())
    }

    fn class_char(&mut self, whole: &str) -> Result<char, Problem> {
        let t = self.rest();
        match t.chars().next() {
            None => invalid("missing closing ]", whole),
            Some('\\') => {
                let (c, len) = parse_escape(t)?;
                self.pos += len;
                Ok(c)
            }
            Some(c) => {
                self.pos += c.len_utf8();
                Ok(c)
            }
        }
    }
}

/// A literal in Rust's syntax: ASCII letters, digits and non-ASCII characters as themselves,
/// everything else escaped (so nothing is read as syntax, in or out of a class).
fn literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == '_' || (!c.is_ascii() && !c.is_whitespace()) {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:x}}}", c as u32));
    }
}

/// `\d`, `\s`, `\w` and their negations as Go defines them (ASCII; `\s` without `\v`): the set
/// body for a bracket class, and whether it is negated.
fn perl_class(t: &str) -> Option<(&'static str, bool)> {
    let b = t.as_bytes();
    if b.len() < 2 || b[0] != b'\\' {
        return None;
    }
    let (set, negated) = match b[1] {
        b'd' => ("0-9", false),
        b'D' => ("^0-9", true),
        b's' => ("\\t\\n\\x0C\\r\\x20", false),
        b'S' => ("^\\t\\n\\x0C\\r\\x20", true),
        b'w' => ("0-9A-Za-z_", false),
        b'W' => ("^0-9A-Za-z_", true),
        _ => return None,
    };
    Some((set, negated))
}

/// `\pX`, `\p{Name}`, `\PX`, `\p{^Name}` (Go's `parseUnicodeClass`), as Rust's `\p{..}`/`\P{..}`.
fn unicode_class(t: &str) -> Result<Option<(String, usize)>, Problem> {
    let b = t.as_bytes();
    if b.len() < 2 || b[0] != b'\\' || (b[1] != b'p' && b[1] != b'P') {
        return Ok(None);
    }
    let mut negated = b[1] == b'P';
    let after = &t[2..];
    let (name, len) = match after.chars().next() {
        Some('{') => match t.find('}') {
            Some(end) => (&t[3..end], end + 1),
            None => return invalid("invalid character class range", t),
        },
        Some(c) => (&after[..c.len_utf8()], 2 + c.len_utf8()),
        None => return invalid("invalid character class range", t),
    };
    let name = match name.strip_prefix('^') {
        Some(n) => {
            negated = !negated;
            n
        }
        None => name,
    };
    let canon = canonical_name(name);
    let Some((_, rust)) = UNICODE_NAMES.iter().find(|(go, _)| *go == canon) else {
        return invalid("invalid character class range", &t[..len]);
    };
    if *rust == "Cs" {
        // Surrogates never occur in UTF-8 text: Go's \p{Cs} matches nothing and \P{Cs} any
        // character; Rust refuses the name in a text regex, so the sets are written out.
        let set = if negated {
            "[\\x{0}-\\x{10FFFF}]"
        } else {
            "[^\\x{0}-\\x{10FFFF}]"
        };
        return Ok(Some((set.to_owned(), len)));
    }
    let p = if negated { 'P' } else { 'p' };
    Ok(Some((format!("\\{p}{{{rust}}}"), len)))
}

/// Go's `canonicalName`: the first letter upper case, the others lower, `_`, `-`, ` ` dropped.
fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut first = true;
    for c in name.chars() {
        match c {
            '_' | '-' | ' ' => {}
            _ if first => {
                first = false;
                out.push(c.to_ascii_uppercase());
            }
            _ => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// A single-character escape (Go's `parseEscape`): octal, `\x..`, C escapes, escaped ASCII
/// punctuation. Returns the character and the escape's length.
fn parse_escape(s: &str) -> Result<(char, usize), Problem> {
    let t = &s[1..];
    let Some(c) = t.chars().next() else {
        return invalid("trailing backslash at end of expression", "");
    };
    let after = &t[c.len_utf8()..];
    let octal = |b: Option<&u8>| b.is_some_and(|b| (b'0'..=b'7').contains(b));
    let bad = |len: usize| invalid("invalid escape sequence", &s[..len.min(s.len())]);
    match c {
        '1'..='7' if !octal(after.as_bytes().first()) => bad(2),
        '0'..='7' => {
            let mut r = c as u32 - '0' as u32;
            let mut len = 2;
            for b in after.bytes().take(2) {
                if !(b'0'..=b'7').contains(&b) {
                    break;
                }
                r = r * 8 + (b - b'0') as u32;
                len += 1;
            }
            Ok((char::from_u32(r).expect("at most 0o777"), len))
        }
        'x' => {
            if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    return bad(s.len());
                };
                let hex = &body[..end];
                if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return bad(3 + end + 1);
                }
                let v = u32::from_str_radix(hex, 16).ok().filter(|v| *v <= 0x10FFFF);
                let Some(v) = v else { return bad(3 + end + 1) };
                match char::from_u32(v) {
                    Some(c) => Ok((c, 3 + end + 1)),
                    None => unsupported(format!("the surrogate escape \\x{{{hex}}}")),
                }
            } else {
                let h = after.as_bytes();
                if h.len() < 2 || !h[0].is_ascii_hexdigit() || !h[1].is_ascii_hexdigit() {
                    return bad(4);
                }
                let v = u32::from_str_radix(&after[..2], 16).expect("two hex digits");
                Ok((char::from_u32(v).expect("below 256"), 4))
            }
        }
        'a' => Ok(('\x07', 2)),
        'f' => Ok(('\x0C', 2)),
        'n' => Ok(('\n', 2)),
        'r' => Ok(('\r', 2)),
        't' => Ok(('\t', 2)),
        'v' => Ok(('\x0B', 2)),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c, 2)),
        c => bad(1 + c.len_utf8()),
    }
}

/// A counted repetition `{n}`, `{n,}`, `{n,m}` (Go's `parseRepeat`): (min, max or -1, length);
/// None when the text is not one (then `{` is a literal). A number too large is -1 for min
/// (an error later), as in Go.
fn parse_count(s: &str) -> Option<(i64, i64, usize)> {
    let b = s.as_bytes();
    // Go's parseInt: digits, no leading zero before another digit, -1 past 1e8.
    let int = |i: usize| -> Option<(i64, usize)> {
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == i || (j - i >= 2 && b[i] == b'0') {
            return None;
        }
        let mut n: i64 = 0;
        for &d in &b[i..j] {
            if n >= 100_000_000 {
                n = -1;
                break;
            }
            n = n * 10 + (d - b'0') as i64;
        }
        Some((n, j))
    };
    let (mut min, mut i) = int(1)?;
    let max;
    if b.get(i) == Some(&b',') {
        i += 1;
        if b.get(i) == Some(&b'}') {
            max = -1;
        } else {
            let (m, j) = int(i)?;
            i = j;
            max = m;
            if m < 0 {
                min = -1;
            }
        }
    } else {
        max = min;
    }
    (b.get(i) == Some(&b'}')).then_some((min, max, i + 1))
}
