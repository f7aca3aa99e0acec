//! The HTML debug pages as data, extracted from our pages with the rules `testdata/
//! conformance-gen/pages.go` applies to the Go allocator's (there with golang.org/x/net/html):
//! the `<title>`, each `<h1>` and `<p>` text, the `<nav>`'s links, and each table (the cells of
//! its `<thead>`, then each `<tr>` of its body as cells of text and first link). Texts are
//! entity-decoded and trimmed. A small tokenizer is enough: it reads only pages we write.

use serde::Deserialize;

#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Cell {
    pub text: String,
    pub link: String,
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub path: String,
    pub status: u16,
    pub content_type: String,
    pub x_content_type_options: String,
    pub title: String,
    pub headings: Vec<String>,
    pub paragraphs: Vec<String>,
    pub nav: Vec<Cell>,
    pub tables: Vec<Table>,
    #[serde(default)]
    pub masked: String,
}

enum Token<'a> {
    Text(&'a str),
    Start(&'a str, &'a str),
    End(&'a str),
}

/// Tags, their attributes' text, and the text between them; `<style>` and `<script>` contents
/// skipped.
fn tokens(html: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        if lt > 0 {
            out.push(Token::Text(&rest[..lt]));
        }
        let gt = rest[lt..].find('>').map(|g| lt + g).expect("a tag ends");
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            out.push(Token::End(name.trim()));
            continue;
        }
        if tag.starts_with('!') {
            continue;
        }
        let tag = tag.trim_end_matches('/');
        let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        if name == "style" || name == "script" {
            let end = rest.find(&format!("</{name}>")).expect("raw text ends");
            rest = &rest[end + name.len() + 3..];
            continue;
        }
        out.push(Token::Start(name, attrs));
    }
    if !rest.is_empty() {
        out.push(Token::Text(rest));
    }
    out
}

fn decode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').map(|i| amp + i);
        let entity = semi.map(|e| &rest[amp + 1..e]);
        let ch = match entity {
            Some("amp") => Some('&'),
            Some("lt") => Some('<'),
            Some("gt") => Some('>'),
            Some("quot") => Some('"'),
            Some("apos") => Some('\''),
            Some(e) if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match (ch, semi) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[amp + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn href(attrs: &str) -> String {
    let Some(at) = attrs.find("href=\"") else {
        return String::new();
    };
    let v = &attrs[at + 6..];
    decode(&v[..v.find('"').expect("a quoted value ends")])
}

/// The page's data (status and headers filled by the caller).
pub fn extract(html: &str) -> Page {
    let mut p = Page::default();
    // Where text goes: title, h1, p, a nav link, a cell.
    #[derive(PartialEq)]
    enum In {
        None,
        Title,
        H1,
        P,
        NavA,
        Cell,
    }
    let mut into = In::None;
    let mut buf = String::new();
    let mut in_nav = false;
    let mut nav_link = String::new();
    let mut table: Option<Table> = None;
    let mut in_thead = false;
    let mut row: Option<Vec<Cell>> = None;
    let mut cell_link: Option<String> = None;
    for t in tokens(html) {
        match t {
            Token::Text(s) => {
                if into != In::None {
                    buf.push_str(s);
                }
            }
            Token::Start(name, attrs) => match name {
                "title" if into == In::None => {
                    into = In::Title;
                    buf.clear();
                }
                "h1" if into == In::None => {
                    into = In::H1;
                    buf.clear();
                }
                "p" if into == In::None && table.is_none() => {
                    into = In::P;
                    buf.clear();
                }
                "nav" => in_nav = true,
                "a" if in_nav => {
                    into = In::NavA;
                    buf.clear();
                    nav_link = href(attrs);
                }
                "a" if into == In::Cell && cell_link.is_none() => cell_link = Some(href(attrs)),
                "table" => table = Some(Table::default()),
                "thead" => in_thead = true,
                "tr" if table.is_some() => row = Some(Vec::new()),
                "td" | "th" if table.is_some() => {
                    if row.is_none() && !in_thead {
                        row = Some(Vec::new());
                    }
                    into = In::Cell;
                    buf.clear();
                    cell_link = None;
                }
                _ => {}
            },
            Token::End(name) => match name {
                "title" if into == In::Title => {
                    p.title = decode(buf.trim()).trim().to_owned();
                    into = In::None;
                }
                "h1" if into == In::H1 => {
                    p.headings.push(decode(&buf).trim().to_owned());
                    into = In::None;
                }
                "p" if into == In::P => {
                    p.paragraphs.push(decode(&buf).trim().to_owned());
                    into = In::None;
                }
                "a" if into == In::NavA => {
                    p.nav.push(Cell {
                        text: decode(&buf).trim().to_owned(),
                        link: std::mem::take(&mut nav_link),
                    });
                    into = In::None;
                }
                "nav" => in_nav = false,
                "td" | "th" if into == In::Cell => {
                    let text = decode(&buf).trim().to_owned();
                    let t = table.as_mut().expect("in a table");
                    if in_thead {
                        t.headers.push(text);
                    } else {
                        row.as_mut().expect("in a row").push(Cell {
                            text,
                            link: cell_link.take().unwrap_or_default(),
                        });
                    }
                    into = In::None;
                }
                "tr" => {
                    if let (Some(r), Some(t)) = (row.take(), table.as_mut()) {
                        t.rows.push(r);
                    }
                }
                "thead" => in_thead = false,
                "table" => p.tables.extend(table.take()),
                _ => {}
            },
        }
    }
    p
}

/// Blank the cells that depend on placement, as `maskPlacement` in pages.go does for the
/// least-weighted strategy (the Go allocator places in map order there).
pub fn mask(p: &mut Page) {
    let path = p.path.split('?').next().unwrap_or_default().to_owned();
    // Ours has the dashboard's tables before the Go index's: its collectors table.
    let index = p
        .tables
        .iter()
        .position(|t| t.headers == ["Collector", "Job Count", "Target Count"]);
    let mut blank = |t: usize, col: Option<usize>| {
        if let Some(t) = p.tables.get_mut(t) {
            for row in &mut t.rows {
                match col {
                    None => row.iter_mut().for_each(|c| *c = Cell::default()),
                    Some(c) if c < row.len() => row[c] = Cell::default(),
                    Some(_) => {}
                }
            }
        }
    };
    match path.as_str() {
        "/" => {
            if let Some(at) = index {
                blank(at, Some(1));
            }
        }
        "/debug/targets" => blank(0, Some(2)),
        "/debug/job" => blank(0, Some(1)),
        "/debug/collector" => blank(0, None),
        "/debug/target" => {
            if let Some(c) = p
                .tables
                .get_mut(0)
                .and_then(|t| t.rows.get_mut(0))
                .and_then(|r| r.get_mut(1))
            {
                *c = Cell::default();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_as_the_go_side_does() {
        let p = extract(
            "<!DOCTYPE html><html><head><title>T &amp; U</title><style>a{b:c}</style></head>\
             <body><h1>T</h1><nav><ul><li><a href=\"/\">Home</a></li></ul></nav>\
             <table><thead><td> A </td><td>B</td></thead><tr><td><a href=\"/x?a=%3C&amp;b\">x&lt;</a></td>\
             <td><pre>{\n}</pre></td></tr></table><p>p</p></body></html>",
        );
        assert_eq!(p.title, "T & U");
        assert_eq!(p.headings, ["T"]);
        assert_eq!(p.paragraphs, ["p"]);
        assert_eq!(
            p.nav,
            [Cell {
                text: "Home".into(),
                link: "/".into()
            }]
        );
        assert_eq!(p.tables.len(), 1);
        assert_eq!(p.tables[0].headers, ["A", "B"]);
        assert_eq!(
            p.tables[0].rows,
            [vec![
                Cell {
                    text: "x<".into(),
                    link: "/x?a=%3C&b".into()
                },
                Cell {
                    text: "{\n}".into(),
                    link: String::new()
                }
            ]]
        );
    }
}
