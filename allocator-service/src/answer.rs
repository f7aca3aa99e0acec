//! A served answer in both encodings the service offers: the JSON bytes, and their gzip form,
//! compressed at most once per answer (an answer is immutable and shared by every view that
//! still serves it, so an unchanged (job, collector) pair is never compressed again), and the
//! `Accept-Encoding` negotiation that picks between them.
//!
//! Collectors' HTTP SD clients (Go's `net/http` transport) ask for gzip by themselves, and an
//! answer of 10k targets is megabytes of repetitive JSON: at thousands of polls per second, bytes
//! are the limit, not CPU.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http_body::{Frame, SizeHint};

/// The gzip level. Measured on 100 real answers (`benches/gzip.rs`, benches/README.md): level 1
/// makes them 12.9× smaller at 420 MiB/s, level 6 24.3× at 115 MiB/s. Either cuts what a poll
/// sends by more than 90%; level 1 does it at a quarter of the CPU, and every change of a pair
/// is compressed again (a million targets' answers: ~0.5 s at level 1, ~1.8 s at level 6 on
/// one core of this 2-core machine).
pub const LEVEL: u32 = 1;

/// Answers shorter than this are always served plain: gzip's 18-byte frame and its Huffman
/// tables would make them larger, not smaller.
pub const MIN_GZIP: usize = 512;

/// One part of an answer: JSON bytes and, made on first need, their gzip member. A part is
/// immutable and shared by every answer (and view) that holds it, so it is compressed once.
///
/// A chunk of a large answer ([`Part::chunk`]) keeps only one form: once its gzip member is
/// made, its plain bytes are dropped, and a plain client (or the publisher recutting the chunk)
/// gets them back by inflating the member. At a million targets the plain chunks were ~200
/// bytes a target held next to ~30 bytes of gzip; inflating an 8 KB member costs microseconds.
pub struct Part {
    /// Plain bytes in all.
    len: usize,
    /// Keep the plain bytes next to the gzip member (small and one-buffer answers; the shared
    /// separators).
    keep_plain: bool,
    forms: Mutex<Forms>,
    /// Which targets a chunk of an HTTP SD answer serves (empty for other parts).
    members: Members,
}

/// The targets of a chunk's fragments, in their order: the debug pages (`/debug/targets`, …)
/// read the published view's targets from the answers, and a fragment does not hold the
/// target's key (the hash of its relabeled labels). 8 bytes a target.
#[derive(Default)]
pub struct Members {
    /// The key of each fragment, in order.
    pub keys: Box<[u64]>,
    /// Positions (in `keys`) of fragments served to a second owner during a hand-over: the
    /// target belongs to the other collector.
    pub seconds: Box<[u32]>,
}

/// What a part holds now: at least one of the two.
struct Forms {
    plain: Option<Bytes>,
    gzip: Option<Bytes>,
}

impl Part {
    /// A part that keeps its plain bytes (a one-buffer answer, a separator).
    pub fn new(plain: Bytes) -> Arc<Part> {
        Part::make(plain, true, Members::default())
    }

    /// A chunk of a large answer: its plain bytes are dropped once its gzip member is made.
    pub fn chunk(plain: Bytes) -> Arc<Part> {
        Part::make(plain, false, Members::default())
    }

    /// A chunk of an HTTP SD answer: [`Part::chunk`] with the targets its fragments are.
    pub fn targets_chunk(plain: Bytes, members: Members) -> Arc<Part> {
        Part::make(plain, false, members)
    }

    fn make(plain: Bytes, keep_plain: bool, members: Members) -> Arc<Part> {
        Arc::new(Part {
            len: plain.len(),
            keep_plain,
            forms: Mutex::new(Forms {
                plain: Some(plain),
                gzip: None,
            }),
            members,
        })
    }

    /// The targets of the fragments (empty unless made by [`Part::targets_chunk`]).
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// Plain bytes in all.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The plain bytes: shared while they are held, inflated from the gzip member otherwise.
    pub fn plain(&self) -> Bytes {
        let member = {
            let forms = self.forms.lock();
            match (&forms.plain, &forms.gzip) {
                (Some(p), _) => return p.clone(),
                (None, Some(g)) => g.clone(),
                (None, None) => unreachable!("a part holds at least one form"),
            }
        };
        Bytes::from(gunzip(&member, self.len))
    }

    /// Whether the plain bytes are held (not to be inflated).
    pub fn holds_plain(&self) -> bool {
        self.forms.lock().plain.is_some()
    }

    /// The gzip member, compressed now if no one has yet (concurrent first callers wait for one
    /// compression rather than each doing it). A chunk then drops its plain bytes.
    pub fn gzip(&self) -> Bytes {
        let mut forms = self.forms.lock();
        if let Some(g) = &forms.gzip {
            return g.clone();
        }
        let plain = forms
            .plain
            .as_ref()
            .expect("a part holds at least one form");
        let g = gzip(plain);
        forms.gzip = Some(g.clone());
        if !self.keep_plain {
            forms.plain = None;
        }
        g
    }

    pub fn gzipped(&self) -> bool {
        self.forms.lock().gzip.is_some()
    }
}

/// The `len` plain bytes of `member`, one of our own gzip members (made by [`gzip_at`] from
/// bytes of that length: it cannot fail to inflate). Its deflate data is inflated by this
/// thread's reused inflater (no window allocated and zeroed per member).
fn gunzip(member: &[u8], len: usize) -> Vec<u8> {
    let raw = member
        .get(HEADER_LEN..member.len().saturating_sub(TRAILER_LEN))
        .filter(|_| member[..4] == HEADER_FIXED);
    let inflated = raw.and_then(|raw| {
        INFLATE.with(|cell| {
            let mut cell = cell.borrow_mut();
            let d = cell.get_or_insert_with(|| Decompress::new(false));
            d.reset(false);
            let mut out = Vec::with_capacity(len);
            loop {
                let (took, made) = (d.total_in(), out.len());
                let rest = &raw[usize::try_from(took).ok()?..];
                match d.decompress_vec(rest, &mut out, FlushDecompress::Finish) {
                    Ok(Status::StreamEnd) => return Some(out),
                    Ok(_) if d.total_in() != took || out.len() != made => out.reserve(64),
                    Ok(_) if out.len() == out.capacity() => out.reserve(64),
                    _ => return None,
                }
            }
        })
    });
    let out = inflated.unwrap_or_else(|| {
        // Not a member as `gzip_at` writes them: the general reader says what is wrong.
        use std::io::Read as _;
        let mut out = Vec::with_capacity(len);
        flate2::read::GzDecoder::new(member)
            .read_to_end(&mut out)
            .expect("our own gzip member inflates");
        out
    });
    debug_assert_eq!(out.len(), len);
    out
}

/// A gzip member's header as [`gzip_at`] writes it (RFC 1952 §2.3): magic, deflate, no flags
/// (no name, comment or extra field), no time; then the extra flags and the OS (unknown).
const HEADER_FIXED: [u8; 4] = [0x1f, 0x8b, 8, 0];
const HEADER_LEN: usize = 10;
/// CRC-32 and length of the plain bytes, little-endian.
const TRAILER_LEN: usize = 8;

thread_local! {
    /// This thread's deflater, with its level: reset between members. A new one per member
    /// allocated and zeroed its tables (hundreds of kilobytes) each time, which took about as
    /// much of the gzip thread's CPU as compressing the 8 KB chunk itself (perf, at 1M targets).
    static DEFLATE: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    /// This thread's inflater (raw deflate), reset between members.
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// The separators of a chunked list, shared by every answer.
static OPEN: LazyLock<Arc<Part>> = LazyLock::new(|| Part::new(Bytes::from_static(b"[")));
static COMMA: LazyLock<Arc<Part>> = LazyLock::new(|| Part::new(Bytes::from_static(b",")));
static CLOSE: LazyLock<Arc<Part>> = LazyLock::new(|| Part::new(Bytes::from_static(b"]")));

/// One answer: its parts, whose concatenation is the plain JSON. A large HTTP SD answer is a
/// list of chunks (a few kilobytes of targets each, see [`crate::publish`]), so a change
/// rebuilds and compresses only the chunks it touches; its gzip form is the parts' gzip members
/// one after the other, which is one valid gzip stream (RFC 1952 §2.2: a gzip file is a series
/// of members; Go's `compress/gzip` reader, and so `net/http`'s transport, reads them as one
/// stream by default, as do Python's `gzip` and `urllib3`).
pub struct Answer {
    parts: Box<[Arc<Part>]>,
    /// Plain bytes in all.
    len: usize,
}

impl PartialEq for Answer {
    /// Same plain bytes (the gzip form follows from them).
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.plain() == other.plain()
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("plain", &self.len)
            .field("parts", &self.parts.len())
            .finish()
    }
}

static EMPTY: LazyLock<Arc<Answer>> = LazyLock::new(|| Answer::new(Bytes::from_static(b"[]")));

impl Answer {
    /// An answer of one part.
    pub fn new(plain: Bytes) -> Arc<Answer> {
        Arc::new(Answer {
            len: plain.len(),
            parts: Box::new([Part::new(plain)]),
        })
    }

    /// The JSON list `[c0,c1,…]` of `chunks` (each the text of one or more elements joined by
    /// `,`; none empty). No chunk: `[]`.
    pub fn list(chunks: impl ExactSizeIterator<Item = Arc<Part>>) -> Arc<Answer> {
        if chunks.len() == 0 {
            return Answer::empty();
        }
        let mut parts = Vec::with_capacity(2 * chunks.len() + 1);
        parts.push(OPEN.clone());
        for (i, c) in chunks.enumerate() {
            debug_assert!(!c.is_empty());
            if i > 0 {
                parts.push(COMMA.clone());
            }
            parts.push(c);
        }
        parts.push(CLOSE.clone());
        Arc::new(Answer {
            len: parts.iter().map(|p| p.len()).sum(),
            parts: parts.into_boxed_slice(),
        })
    }

    /// The answer whose plain bytes are `parts`' one after the other (shared, not copied).
    pub fn concat(parts: Vec<Arc<Part>>) -> Arc<Answer> {
        Arc::new(Answer {
            len: parts.iter().map(|p| p.len()).sum(),
            parts: parts.into_boxed_slice(),
        })
    }

    /// The empty list `[]`, shared.
    pub fn empty() -> Arc<Answer> {
        EMPTY.clone()
    }

    /// Its parts, in order.
    pub fn parts(&self) -> &[Arc<Part>] {
        &self.parts
    }

    /// Plain bytes in all.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The plain JSON as one buffer (shared when the answer is one part that holds it, copied
    /// or inflated otherwise).
    pub fn plain(&self) -> Bytes {
        match &*self.parts {
            [one] => one.plain(),
            parts => {
                let mut out = Vec::with_capacity(self.len);
                for p in parts {
                    out.extend_from_slice(&p.plain());
                }
                Bytes::from(out)
            }
        }
    }

    /// Whether gzip is worth it for this answer at all.
    pub fn compressible(&self) -> bool {
        self.len >= MIN_GZIP
    }

    /// The gzip form, as one buffer: every part's member, compressed now where no one has yet.
    pub fn gzip(&self) -> Bytes {
        let members = self.gzip_members();
        match &*members {
            [one] => one.clone(),
            members => Bytes::from(members.concat()),
        }
    }

    fn gzip_members(&self) -> Vec<Bytes> {
        self.parts.iter().map(|p| p.gzip()).collect()
    }

    /// Compress the parts that are not yet (what the [`Warmer`] does off the loop).
    pub fn warm(&self) {
        for p in &*self.parts {
            p.gzip();
        }
    }

    /// Whether every part's gzip form is made.
    pub fn gzipped(&self) -> bool {
        self.parts.iter().all(|p| p.gzipped())
    }

    /// The response for a client: gzip when it accepts gzip and the answer is large enough,
    /// plain otherwise; `Vary: Accept-Encoding` either way, since the encoding depends on it.
    /// The body is the parts' buffers in order (no copy into one buffer), with its length; a
    /// plain part that only its gzip member holds is inflated when the body reaches it.
    pub fn respond(&self, gzip_ok: bool, content_type: &'static str) -> Response {
        let vary = (header::VARY, HeaderValue::from_static("accept-encoding"));
        let ct = (header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzip_ok && self.compressible() {
            let enc = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            let members = self.gzip_members().into_iter().map(Piece::Ready).collect();
            ([ct, vary, enc], Parts::body(members)).into_response()
        } else {
            let plain = self.parts.iter().cloned().map(Piece::Plain).collect();
            ([ct, vary], Parts::body(plain)).into_response()
        }
    }
}

/// One buffer of a response body: ready, or a part's plain bytes (read when it is sent).
enum Piece {
    Ready(Bytes),
    Plain(Arc<Part>),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Ready(b) => b.len(),
            Piece::Plain(p) => p.len(),
        }
    }

    fn bytes(self) -> Bytes {
        match self {
            Piece::Ready(b) => b,
            Piece::Plain(p) => p.plain(),
        }
    }
}

/// A response body made of buffers sent one after the other, its length known up front (so it
/// goes out with `Content-Length`, as a one-buffer body does).
struct Parts {
    parts: std::vec::IntoIter<Piece>,
    remaining: u64,
}

impl Parts {
    fn body(parts: Vec<Piece>) -> Body {
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        Body::new(Parts {
            parts: parts.into_iter(),
            remaining,
        })
    }
}

impl HttpBody for Parts {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.parts.by_ref().find(|p| p.len() > 0).map(Piece::bytes);
        if let Some(p) = &next {
            self.remaining -= p.len() as u64;
        }
        std::task::Poll::Ready(next.map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Makes the gzip form of each published view's rebuilt answers on a thread of its own, so the
/// allocation loop's next tick is not delayed by compression and clients rarely wait for it;
/// then returns the heap's free pages to the system ([`crate::publish::trim`]).
pub struct Warmer {
    tx: Option<std::sync::mpsc::Sender<Vec<Arc<Answer>>>>,
}

impl Default for Warmer {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Arc<Answer>>>();
        let spawned = std::thread::Builder::new()
            .name("gzip-warm".into())
            .spawn(move || {
                while let Ok(batch) = rx.recv() {
                    for a in batch {
                        // Skip answers no view serves any more (a newer view replaced them).
                        if Arc::strong_count(&a) > 1 && a.compressible() {
                            a.warm();
                        }
                    }
                    // The tick that sent the batch freed the last view's leftovers.
                    crate::publish::trim();
                }
            });
        match spawned {
            Ok(_) => Warmer { tx: Some(tx) },
            Err(e) => {
                // Clients then compress on their first request: slower, still correct.
                tracing::warn!(error = %e, "cannot start the gzip thread; compressing on request");
                Warmer { tx: None }
            }
        }
    }
}

impl Warmer {
    /// Queue answers for compression (returns at once).
    pub fn warm(&self, answers: Vec<Arc<Answer>>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(answers);
        }
    }
}

/// `bytes` as one gzip member at [`LEVEL`].
pub fn gzip(bytes: &[u8]) -> Bytes {
    gzip_at(bytes, LEVEL)
}

/// `bytes` as one gzip member at `level` (0–9), deflated by this thread's reused deflater.
pub fn gzip_at(bytes: &[u8], level: u32) -> Bytes {
    let level = level.min(9);
    // The extra flags say "fastest" or "best" as flate2's and Go's writers do.
    let xfl = match level {
        9 => 2,
        0 | 1 => 4,
        _ => 0,
    };
    let mut member = Vec::with_capacity(HEADER_LEN + bytes.len() / 4 + 64);
    member.extend_from_slice(&HEADER_FIXED);
    member.extend_from_slice(&[0, 0, 0, 0, xfl, 255]);
    DEFLATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        if !matches!(&*cell, Some((l, _)) if *l == level) {
            *cell = Some((level, Compress::new(Compression::new(level), false)));
        }
        let c = &mut cell.as_mut().expect("set above").1;
        c.reset();
        loop {
            let took = usize::try_from(c.total_in()).expect("within the input's length");
            let status = c
                .compress_vec(&bytes[took..], &mut member, FlushCompress::Finish)
                .expect("deflating into a Vec cannot fail");
            if status == Status::StreamEnd {
                break;
            }
            // Out of room: grow, then go on where it stopped.
            member.reserve(member.capacity() / 2 + 64);
        }
    });
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    member.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952 §2.3.1).
    member.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    // Exactly its length: a `Bytes` made from a `Vec` keeps the `Vec`'s spare capacity, which
    // the growth while compressing made up to twice the member (members are held for as long
    // as their chunk is served).
    Bytes::from(member.into_boxed_slice())
}

/// Whether the request's `Accept-Encoding` allows gzip (RFC 9110 §12.5.3): `gzip` (or its
/// alias `x-gzip`) listed with a non-zero q-value, or, when gzip is not listed, `*` with a
/// non-zero q-value. No header, an empty header, `gzip;q=0`, and elements whose q-value is not
/// a valid qvalue all mean no.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip: Option<u16> = None;
    let mut any: Option<u16> = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            let mut parts = element.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let mut q = Some(1000);
            for param in parts {
                let Some((name, v)) = param.split_once('=') else {
                    q = None;
                    break;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(v.trim());
                }
            }
            let Some(q) = q else { continue };
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding == "*" {
                    &mut any
                } else {
                    continue;
                };
            // Listed twice: the more favourable weight counts.
            *slot = Some(slot.map_or(q, |s| s.max(q)));
        }
    }
    gzip.or(any).is_some_and(|q| q > 0)
}

/// A qvalue in thousandths: `0`, `0.5`, `1`, `1.000` (at most three decimals, at most 1).
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = whole + thousandths;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn accept_encoding_is_read_with_its_q_values() {
        let yes = [
            "gzip",
            "GZip",
            "x-gzip",
            "gzip, deflate, br",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
            "identity, gzip;q=0.001",
            "*",
            "*;q=0.5",
            "deflate, *",
            "gzip ; q=1",
            "gzip;Q=0.5",
            "gzip;q=1.000",
            "gzip;q=0, gzip;q=0.5",
            "br, gzip;q=bad, *",
        ];
        for v in yes {
            assert!(accepts_gzip(&headers(&[v])), "{v:?} allows gzip");
        }
        let no = [
            "",
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip;q=0.0",
            "gzip;q=0.000",
            "gzip;q=0, *",
            "*;q=0",
            "*;q=0, identity",
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.0001",
            "gzip;q=",
            "gzip;q",
            "gzip;q=-1",
            "gzipx",
            "gzip-ish;q=1",
        ];
        for v in no {
            assert!(!accepts_gzip(&headers(&[v])), "{v:?} does not allow gzip");
        }
        assert!(!accepts_gzip(&HeaderMap::new()), "no header: plain");
        // Several header lines are one list.
        assert!(accepts_gzip(&headers(&["br", "gzip"])));
        assert!(!accepts_gzip(&headers(&["gzip;q=0", "br"])));
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_gzip_form_decompresses_to_exactly_the_plain_answer() {
        let mut json = b"[".to_vec();
        for n in 0..3000 {
            if n > 0 {
                json.push(b',');
            }
            json.extend_from_slice(
                format!(
                    r#"{{"labels":{{"__address__":"10.0.{}.{}:9100","__meta_note":"\"q\" \\ é {n}"}},"targets":["10.0.{}.{}:9100"]}}"#,
                    n >> 8,
                    n & 255,
                    n >> 8,
                    n & 255
                )
                .as_bytes(),
            );
        }
        json.push(b']');
        let a = Answer::new(Bytes::from(json.clone()));
        assert!(!a.gzipped());
        let z = a.gzip();
        assert!(a.gzipped());
        assert_eq!(gunzip(&z), json);
        assert!(
            z.len() * 4 < json.len(),
            "{} of {} bytes",
            z.len(),
            json.len()
        );
        // Made once: later calls share the same buffer.
        assert_eq!(a.gzip().as_ptr(), z.as_ptr());
        for level in [0, 1, 6, 9] {
            assert_eq!(gunzip(&gzip_at(&json, level)), json, "level {level}");
        }
        assert_eq!(gunzip(&gzip(b"")), b"");
    }

    #[tokio::test]
    async fn a_chunked_answer_is_the_list_of_its_chunks_in_both_encodings() {
        // Chunks as the publisher makes them: elements joined by `,`.
        let elements: Vec<String> = (0..500)
            .map(|n| format!(r#"{{"labels":{{"n":"{n} é \"q\""}},"targets":["10.0.0.{n}:80"]}}"#))
            .collect();
        let chunks: Vec<Arc<Part>> = elements
            .chunks(37)
            .map(|c| Part::new(Bytes::from(c.join(","))))
            .collect();
        let a = Answer::list(chunks.clone().into_iter());
        // The reference: the elements as one JSON list, written independently of the chunks.
        let want = format!("[{}]", elements.join(","));
        let parsed: serde_json::Value = serde_json::from_str(&want).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 500);
        assert_eq!(a.plain(), want.as_bytes());
        assert_eq!(a.len(), want.len());
        assert!(!a.gzipped());
        a.warm();
        assert!(a.gzipped());
        // Every part is one gzip member: the concatenation is one multi-member stream.
        let z = a.gzip();
        assert_eq!(gunzip(&z), want.as_bytes());
        assert!(z.len() * 4 < want.len());
        // A second answer sharing the chunks shares their compressed forms.
        let b = Answer::list(chunks[..2].iter().cloned());
        assert!(b.gzipped());
        assert_eq!(Answer::list(std::iter::empty()).plain(), &b"[]"[..]);
        for gzip_ok in [false, true] {
            let r = a.respond(gzip_ok, "application/json");
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            let body = if gzip_ok {
                gunzip(&body)
            } else {
                body.to_vec()
            };
            assert_eq!(body, want.as_bytes(), "gzip {gzip_ok}");
        }
        let r = a.respond(true, "application/json");
        assert_eq!(
            axum::body::HttpBody::size_hint(r.body()).exact(),
            Some(z.len() as u64),
            "the length is known: sent with Content-Length"
        );
    }

    #[tokio::test]
    async fn a_chunk_keeps_one_form_and_plain_clients_get_it_inflated() {
        // Chunks as the publisher makes them, of ~8 KB (the reference: the same elements as one
        // JSON list, written without the chunks).
        let elements: Vec<String> = (0..2000)
            .map(|n| {
                format!(r#"{{"labels":{{"__meta_pod":"pod-{n}","n":"é \"q\""}},"targets":["10.0.{}.{}:80"]}}"#, n >> 8, n & 255)
            })
            .collect();
        let want = format!("[{}]", elements.join(","));
        let chunks: Vec<Arc<Part>> = elements
            .chunks(97)
            .map(|c| Part::chunk(Bytes::from(c.join(","))))
            .collect();
        let a = Answer::list(chunks.clone().into_iter());
        assert!(chunks.iter().all(|c| c.holds_plain() && !c.gzipped()));
        // Half of the chunks gzipped by a client, then all by the gzip thread.
        for c in chunks.iter().step_by(2) {
            c.gzip();
        }
        for step in 0..2 {
            assert_eq!(a.plain(), want.as_bytes(), "step {step}");
            let r = a.respond(false, "application/json");
            assert_eq!(
                axum::body::HttpBody::size_hint(r.body()).exact(),
                Some(want.len() as u64)
            );
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(body, want.as_bytes(), "step {step}");
            let r = a.respond(true, "application/json");
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(gunzip(&body), want.as_bytes(), "step {step}");
            a.warm();
        }
        // Once gzipped, a chunk holds only its member; a one-buffer answer and the separators
        // keep both.
        assert!(chunks.iter().all(|c| c.gzipped() && !c.holds_plain()));
        assert!(a.parts()[0].holds_plain() && a.parts()[2].holds_plain());
        let one = Answer::new(Bytes::from(want.clone()));
        one.warm();
        assert!(one.parts()[0].holds_plain());
        let member = chunks[0].gzip();
        assert_eq!(gunzip(&member), chunks[0].plain());
    }

    #[tokio::test]
    async fn a_response_is_gzip_only_for_clients_that_accept_it_and_large_answers() {
        let big = Answer::new(Bytes::from(vec![b' '; MIN_GZIP]));
        let r = big.respond(true, "application/json");
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::VARY], "accept-encoding");
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(gunzip(&body), big.plain());
        let r = big.respond(false, "application/json");
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(r.headers()[header::VARY], "accept-encoding");
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body, big.plain());
        // `[]` would grow.
        let r = Answer::empty().respond(true, "application/json");
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
    }
}
