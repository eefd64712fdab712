//! Response redaction (phase 6b): an upstream that echoes the injected credential (a debug
//! endpoint, an error page quoting the request) must not hand it to the agent.
//!
//! Every occurrence of an injected value, and of its common encodings (percent, minimal and of
//! every byte; base64 standard
//! and URL-safe at every byte alignment, hex, JSON-escaped), is masked with `*` of the same
//! length, case-insensitively, in headers, body and trailers, so framing (`Content-Length`) stays
//! valid. There is no minimum length for the values themselves; derived encodings shorter than
//! `MIN_DERIVED_LEN` (a base64 fragment of a one-byte value) are skipped, and the framing headers
//! (`content-length`, `transfer-encoding`, `content-encoding`, `content-type`) are never touched.
//! Only a tail that could begin a needle is held back between chunks, so streams are not delayed.
//! Compressed bodies are decoded before they get here (`proxy::decode`).
//!
//! Short responses are scanned directly (a first-byte table, then a case-insensitive compare of
//! the candidates, longest first): building an automaton per response cost a third of the
//! proxy's CPU per request. Past `AUTOMATON_AFTER` bytes an aho-corasick automaton is built for
//! the rest of the response; it holds the needles in memory that is not zeroized, as hyper's
//! `HeaderValue` holding the injected header does; the needle list itself is zeroized. The
//! compiled needle list (not the automaton) is kept for the next response that injects the same
//! values, in a bounded cache (`cache.rs`: zeroized when it leaves, at most a minute after its
//! last use, and all of it at every vault change).

use std::pin::Pin;
use std::task::{Context, Poll};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use zeroize::Zeroizing;

use super::upstream::BoxError;

/// Derived encodings shorter than this are not masked (they would match by chance).
pub const MIN_DERIVED_LEN: usize = 4;

/// Headers whose value frames the message: never rewritten.
const FRAMING: &[&str] = &["content-length", "transfer-encoding", "content-encoding", "content-type"];

mod cache;
pub use cache::MaskerCache;

/// The values one request injected, in the order they were pushed (each `[len: u32][bytes]`, in
/// one zeroized buffer), compiled into a [`Masker`] when the response arrives.
#[derive(Default)]
pub struct Needles {
    inputs: Zeroizing<Vec<u8>>,
    /// A value changes on every request (a signature): the compiled form is not cached.
    per_request: bool,
}

impl Needles {
    /// Adds an injected value (its encodings are derived when compiled).
    pub fn push(&mut self, value: &[u8]) {
        let Ok(len) = u32::try_from(value.len()) else { return };
        if len == 0 {
            return;
        }
        // A request pushes a secret or two and the header rendered from them: room for those
        // at once, so the buffer is not regrown (and the old copy wiped) per push.
        let first = if self.inputs.capacity() == 0 { 256 } else { 0 };
        grow(&mut self.inputs, (4 + value.len()).max(first));
        self.inputs.extend_from_slice(&len.to_le_bytes());
        self.inputs.extend_from_slice(value);
    }

    /// Marks the request's values as changing on every request (SigV4's signature): caching them
    /// would only evict entries that are reused.
    pub fn vary_per_request(&mut self) {
        self.per_request = true;
    }

    /// Builds the matcher, from `cache` when the same values were compiled a moment ago. Nothing
    /// is compiled into an automaton up front: short responses (most API answers) are scanned
    /// directly; the aho-corasick automaton is built only once a response has streamed
    /// `AUTOMATON_AFTER` bytes, where one pass for all needles beats its build cost.
    pub fn compile(self, cache: Option<&MaskerCache>) -> Option<Masker> {
        if self.inputs.is_empty() {
            return None;
        }
        let compiled = match cache.filter(|_| !self.per_request) {
            Some(cache) => cache.get_or_build(&self.inputs, Compiled::build)?,
            None => std::sync::Arc::new(Compiled::build(&self.inputs)?),
        };
        Some(Masker { compiled, scanned: std::sync::atomic::AtomicUsize::new(0), ac: std::sync::OnceLock::new() })
    }
}

/// The values of `Needles::inputs`, in order.
fn inputs(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        let value = buf.get(4..4 + len)?;
        buf = &buf[4 + len..];
        Some(value)
    })
}

/// Room for `extra` more bytes in a zeroized buffer. Grown by hand: a Vec's own growth would
/// leave the old copy unzeroized.
fn grow(bytes: &mut Zeroizing<Vec<u8>>, extra: usize) {
    let need = bytes.len() + extra;
    if bytes.capacity() < need {
        let mut grown = Zeroizing::new(Vec::with_capacity(need.max(bytes.capacity() * 2)));
        grown.extend_from_slice(bytes);
        *bytes = grown;
    }
}

/// Every value and its encodings; zeroized when dropped. All of them live in one buffer (a
/// request's dozen needles cost two allocations, not a dozen).
#[derive(Default)]
struct NeedleSet {
    bytes: Zeroizing<Vec<u8>>,
    /// `bytes[start..end]` of each needle.
    spans: Vec<(u32, u32)>,
}

impl NeedleSet {
    /// Adds a value and its common encodings.
    fn push(&mut self, value: &[u8]) {
        // The same value often arrives twice (a secret and the header rendered from it): its
        // encodings are already there.
        if value.is_empty() || self.contains(value) {
            return;
        }
        // The value and its encodings take about 17 times its length: one allocation for all.
        grow(&mut self.bytes, value.len() * 20 + 64);
        self.add(value);
        encodings(value, &mut |derived| {
            if derived.len() >= MIN_DERIVED_LEN {
                self.add(derived);
            }
        });
    }

    fn contains(&self, needle: &[u8]) -> bool {
        self.iter().any(|n| n.eq_ignore_ascii_case(needle))
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|&(s, e)| &self.bytes[s as usize..e as usize])
    }

    fn add(&mut self, needle: &[u8]) {
        if self.contains(needle) {
            return;
        }
        let (Ok(start), Ok(end)) = (u32::try_from(self.bytes.len()), u32::try_from(self.bytes.len() + needle.len()))
        else {
            return;
        };
        grow(&mut self.bytes, needle.len());
        self.bytes.extend_from_slice(needle);
        self.spans.push((start, end));
    }
}

/// The needles of a set of values, ready to scan with: shared by every response that injected
/// the same values while it is cached.
pub struct Compiled {
    /// Grouped by first byte (ASCII case folded), longest first within a group.
    needles: NeedleSet,
    /// For each byte, the range of `needles` that start with it (either case); empty if none.
    ranges: [(u16, u16); 256],
    longest: usize,
}

impl Compiled {
    fn build(inputs_buf: &[u8]) -> Option<Compiled> {
        let mut set = NeedleSet::default();
        for value in inputs(inputs_buf) {
            set.push(value);
        }
        if set.spans.is_empty() {
            return None;
        }
        // Grouped by first byte (either case), longest first within a group, so the first needle
        // that matches at a position is the longest there.
        let bytes = &set.bytes;
        let lower_first = |&(s, _): &(u32, u32)| bytes[s as usize].to_ascii_lowercase();
        set.spans.sort_by_key(|span| (lower_first(span), std::cmp::Reverse(span.1 - span.0)));
        let mut ranges = [(0u16, 0u16); 256];
        let count = u16::try_from(set.spans.len()).ok()?;
        let mut start = 0u16;
        while start < count {
            let key = lower_first(&set.spans[usize::from(start)]);
            let mut end = start;
            while end < count && lower_first(&set.spans[usize::from(end)]) == key {
                end += 1;
            }
            ranges[usize::from(key)] = (start, end);
            ranges[usize::from(key.to_ascii_uppercase())] = (start, end);
            start = end;
        }
        let longest = set.spans.iter().map(|&(s, e)| (e - s) as usize).max().unwrap_or(0);
        Some(Compiled { needles: set, ranges, longest })
    }
}

/// Bytes of one response scanned directly before the automaton is built for the rest.
pub const AUTOMATON_AFTER: usize = 64 * 1024;

/// Every encoding of `value` an upstream is likely to echo it in (forms equal to the value
/// itself are left out: the value is a needle already), handed to `out` one by one from zeroized
/// scratch space.
fn encodings(value: &[u8], out: &mut dyn FnMut(&[u8])) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if !value.iter().all(|b| crate::percent::is_unreserved(*b)) {
        out(Zeroizing::new(crate::percent::encode(value)).as_bytes());
    }
    let mut every_byte = Zeroizing::new(Vec::with_capacity(value.len() * 3));
    let mut hex = Zeroizing::new(Vec::with_capacity(value.len() * 2));
    for &b in value {
        let (hi, lo) = (DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]);
        every_byte.extend_from_slice(&[b'%', hi, lo]);
        hex.extend_from_slice(&[hi, lo]);
    }
    out(&every_byte);
    out(&hex);
    let mut buf = Zeroizing::new(Vec::with_capacity(value.len() + 2));
    let mut enc = Zeroizing::new(String::with_capacity(value.len() * 4 / 3 + 4));
    for engine in [&base64::engine::general_purpose::STANDARD_NO_PAD, &base64::engine::general_purpose::URL_SAFE_NO_PAD]
    {
        // The value may sit at any offset inside a larger encoded blob: encode it behind 0, 1
        // and 2 filler bytes and keep only the characters that depend on the value alone.
        for lead in 0..3usize {
            buf.clear();
            buf.resize(lead, 0);
            buf.extend_from_slice(value);
            enc.clear();
            engine.encode_string(buf.as_slice(), &mut enc);
            let skip = [0, 2, 3][lead];
            let end = if buf.len() % 3 == 0 { enc.len() } else { enc.len().saturating_sub(1) };
            if end > skip {
                out(&enc.as_bytes()[skip..end]);
            }
        }
    }
    // JSON escaping changes only values with quotes, backslashes, slashes, controls or non-ASCII.
    let escapes = value.iter().any(|&b| matches!(b, b'"' | b'\\' | b'/') || !(0x20..0x80).contains(&b));
    if escapes {
        if let Ok(text) = std::str::from_utf8(value) {
            if let Ok(json) = serde_json::to_string(text) {
                let json = Zeroizing::new(json);
                let inner = &json[1..json.len() - 1];
                out(Zeroizing::new(inner.replace('/', "\\/")).as_bytes());
                out(inner.as_bytes());
            }
        }
    }
}

/// One response's scanner: the compiled needles and what this response has used of them.
pub struct Masker {
    compiled: std::sync::Arc<Compiled>,
    scanned: std::sync::atomic::AtomicUsize,
    /// Built on first use past `AUTOMATON_AFTER` bytes (`None` if it cannot be built: the direct
    /// scan carries on).
    ac: std::sync::OnceLock<Option<AhoCorasick>>,
}

impl Masker {
    /// Leftmost-longest, non-overlapping, ASCII case-insensitive occurrences in `buf`.
    fn spans(&self, buf: &[u8]) -> Vec<(usize, usize)> {
        use std::sync::atomic::Ordering;
        let scanned = self.scanned.fetch_add(buf.len(), Ordering::Relaxed) + buf.len();
        if scanned > AUTOMATON_AFTER {
            let ac = self.ac.get_or_init(|| {
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::ContiguousNFA))
                    .build(self.compiled.needles.iter())
                    .ok()
            });
            if let Some(ac) = ac {
                return ac.find_iter(buf).map(|m| (m.start(), m.end())).collect();
            }
        }
        let mut spans = Vec::new();
        let mut i = 0;
        'scan: while i < buf.len() {
            // Jump to the next byte some needle starts with.
            match buf[i..].iter().position(|b| self.starts(*b)) {
                Some(skip) => i += skip,
                None => break,
            }
            let c = &*self.compiled;
            let (from, to) = c.ranges[usize::from(buf[i])];
            for &(s, e) in &c.needles.spans[usize::from(from)..usize::from(to)] {
                let needle = &c.needles.bytes[s as usize..e as usize];
                if buf.len() - i >= needle.len() && buf[i..i + needle.len()].eq_ignore_ascii_case(needle) {
                    spans.push((i, i + needle.len()));
                    i += needle.len();
                    continue 'scan;
                }
            }
            i += 1;
        }
        spans
    }

    /// Whether some needle starts with `b`.
    fn starts(&self, b: u8) -> bool {
        let (from, to) = self.compiled.ranges[usize::from(b)];
        from < to
    }

    /// Masks every occurrence in place; returns whether anything was masked.
    pub fn mask(&self, buf: &mut [u8]) -> bool {
        let spans = self.spans(buf);
        for &(start, end) in &spans {
            buf[start..end].fill(b'*');
        }
        !spans.is_empty()
    }

    /// The length of the longest tail of `buf` that is a proper prefix of some needle. Only
    /// positions holding a byte some needle starts with are tried, earliest first.
    fn pending_prefix(&self, buf: &[u8]) -> usize {
        let from = buf.len().saturating_sub(self.compiled.longest.saturating_sub(1));
        for start in from..buf.len() {
            if !self.starts(buf[start]) {
                continue;
            }
            let tail = &buf[start..];
            if self.compiled.needles.iter().any(|n| n.len() > tail.len() && n[..tail.len()].eq_ignore_ascii_case(tail))
            {
                return tail.len();
            }
        }
        0
    }

    /// Masks header (or trailer) values that contain a needle, except the framing headers.
    pub fn mask_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in headers.iter_mut() {
            if FRAMING.contains(&name.as_str()) {
                continue;
            }
            let spans = self.spans(value.as_bytes());
            if spans.is_empty() {
                continue;
            }
            let mut bytes = value.as_bytes().to_vec();
            for (start, end) in spans {
                bytes[start..end].fill(b'*');
            }
            if let Ok(v) = http::HeaderValue::from_bytes(&bytes) {
                *value = v;
            }
        }
    }
}

/// A response body with needles masked, trailers included.
pub struct Redacted<B> {
    inner: B,
    masker: Masker,
    carry: BytesMut,
    trailers: Option<Frame<Bytes>>,
    done: bool,
}

impl<B> Redacted<B> {
    pub fn new(inner: B, masker: Masker) -> Self {
        Redacted { inner, masker, carry: BytesMut::new(), trailers: None, done: false }
    }
}

impl<B> HttpBody for Redacted<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(trailers) = this.trailers.take() {
                return Poll::Ready(Some(Ok(trailers)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    // Nothing held back and nothing to mask in this chunk: it passes as it is
                    // (no copy), but for a tail that could begin a needle.
                    Ok(mut data) if this.carry.is_empty() && this.masker.spans(&data).is_empty() => {
                        let keep = this.masker.pending_prefix(&data);
                        if keep > 0 {
                            this.carry.extend_from_slice(&data.split_off(data.len() - keep));
                        }
                        if data.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => {
                        this.carry.extend_from_slice(&data);
                        let mut buf = std::mem::take(&mut this.carry);
                        this.masker.mask(&mut buf);
                        let keep = this.masker.pending_prefix(&buf);
                        this.carry = buf.split_off(buf.len() - keep);
                        if buf.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(buf.freeze()))));
                    }
                    Err(frame) => {
                        let frame = match frame.into_trailers() {
                            Ok(mut trailers) => {
                                this.masker.mask_headers(&mut trailers);
                                Frame::trailers(trailers)
                            }
                            Err(other) => other,
                        };
                        // Flush what is held back first (it cannot be a whole needle).
                        if this.carry.is_empty() {
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        this.trailers = Some(frame);
                        return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.carry).freeze()))));
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    if this.carry.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.carry).freeze()))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.carry.is_empty() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needles_share_one_buffer_and_a_repeated_value_adds_nothing() {
        let mut n = NeedleSet::default();
        n.push(b"sk-live-0123456789");
        let (spans, capacity) = (n.spans.len(), n.bytes.capacity());
        assert!(spans >= 6, "the value, percent, hex and base64 at three offsets: {spans}");
        n.push(b"SK-LIVE-0123456789");
        n.push(b"");
        assert_eq!(n.spans.len(), spans, "case-insensitive duplicates are skipped");
        assert_eq!(n.bytes.capacity(), capacity, "one allocation held them all");
        let total: u32 = n.spans.iter().map(|(s, e)| e - s).sum();
        assert_eq!(total as usize, n.bytes.len(), "spans tile the buffer");
    }

    fn hex(v: &[u8]) -> String {
        v.iter().map(|b| format!("{b:02x}")).collect()
    }
    use http_body_util::{BodyExt as _, StreamBody};

    /// The direct scan and the automaton find the same spans (leftmost-longest, case-insensitive).
    #[test]
    fn direct_scan_matches_the_automaton() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let mut needles = Needles::default();
            let values: Vec<Vec<u8>> = (0..3)
                .map(|_| (0..(4 + next() % 12)).map(|_| b"abcAB%=/-_xyz01"[(next() % 15) as usize]).collect())
                .collect();
            for v in &values {
                needles.push(v);
            }
            let mut buf: Vec<u8> = (0..300).map(|_| b"abcAB%=/-_xyz01 \n"[(next() % 17) as usize]).collect();
            for v in &values {
                let at = (next() as usize) % (buf.len() - v.len());
                buf[at..at + v.len()].copy_from_slice(v);
            }
            let masker = needles.compile(None).unwrap();
            let direct = masker.spans(&buf);
            masker.scanned.store(AUTOMATON_AFTER + 1, std::sync::atomic::Ordering::Relaxed);
            let automaton = masker.spans(&buf);
            assert!(masker.ac.get().is_some_and(Option::is_some), "round {round}: the automaton was used");
            assert_eq!(direct, automaton, "round {round}");
            assert!(!direct.is_empty(), "round {round}: the planted values are found");
        }
    }

    fn needles(list: &[&str]) -> Needles {
        let mut n = Needles::default();
        for s in list {
            n.push(s.as_bytes());
        }
        n
    }

    async fn run(chunks: &[&str], list: &[&str]) -> (Vec<String>, String) {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            chunks.iter().map(|c| Ok(Frame::data(Bytes::copy_from_slice(c.as_bytes())))).collect();
        let body = StreamBody::new(futures_util_iter(frames)).boxed();
        let mut r = Redacted::new(body, needles(list).compile(None).unwrap());
        let mut out = Vec::new();
        while let Some(f) = r.frame().await {
            out.push(String::from_utf8(f.unwrap().into_data().unwrap().to_vec()).unwrap());
        }
        let joined = out.concat();
        (out, joined)
    }

    fn futures_util_iter(
        v: Vec<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, BoxError>> + Unpin {
        struct It(std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>);
        impl futures_core::Stream for It {
            type Item = Result<Frame<Bytes>, BoxError>;
            fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                Poll::Ready(self.0.next())
            }
        }
        It(v.into_iter())
    }

    #[tokio::test]
    async fn masks_across_chunk_boundaries_without_holding_back_streams() {
        let (_, joined) = run(&["token=sk-SECRET-1234 ok"], &["sk-SECRET-1234"]).await;
        assert_eq!(joined, "token=************** ok");
        let (_, joined) = run(&["a sk-SEC", "RET-1234 b", "sk-SECRET-1234"], &["sk-SECRET-1234"]).await;
        assert_eq!(joined, "a ************** b**************");
        let (frames, _) = run(&["data: one\n\n", "data: two\n\n"], &["sk-SECRET-1234"]).await;
        assert_eq!(frames, vec!["data: one\n\n", "data: two\n\n"], "no needle prefix: nothing is held back");
        let (_, joined) = run(&["ends with sk-SE"], &["sk-SECRET-1234"]).await;
        assert_eq!(joined, "ends with sk-SE", "a held-back tail is flushed at the end");
        let (_, joined) = run(&["pin 4711 ok"], &["4711"]).await;
        assert_eq!(joined, "pin **** ok", "short values are masked too");
    }

    #[tokio::test]
    async fn every_split_of_a_body_masks_like_the_whole() {
        let list = ["sk-SECRET-1234"];
        let text = "x sk-SECRET-1234 y sk-SE sk-secret-1234sk-SECRET-123";
        let want = masked(&list, text);
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let (_, joined) = run(&[&text[..i], &text[i..j], &text[j..]], &list).await;
                assert_eq!(joined, want, "split at {i}, {j}");
            }
        }
    }

    fn masked(list: &[&str], text: &str) -> String {
        let m = needles(list).compile(None).unwrap();
        let mut buf = text.as_bytes().to_vec();
        m.mask(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn masks_every_common_encoding_of_a_value() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let secret = "sk-SENTINEL/7f3a+9c1e?5b\"";
        let json = serde_json::to_string(secret).unwrap();
        let json = &json[1..json.len() - 1];
        let encoded = [
            ("raw", secret.to_owned()),
            ("upper", secret.to_ascii_uppercase()),
            ("lower", secret.to_ascii_lowercase()),
            ("percent", crate::percent::encode(secret)),
            ("base64", STANDARD.encode(secret)),
            ("base64url", URL_SAFE_NO_PAD.encode(secret)),
            ("hex", hex(secret.as_bytes())),
            ("HEX", hex(secret.as_bytes()).to_ascii_uppercase()),
            ("json", json.to_owned()),
            ("json-slash", json.replace('/', "\\/")),
        ];
        for (name, enc) in encoded {
            let out = masked(&[secret], &format!("<{enc}>"));
            let stars = out.trim_start_matches('<').trim_end_matches('>');
            assert!(
                stars.len() >= enc.len() - 3 && stars.bytes().filter(|b| *b == b'*').count() >= enc.len() - 3,
                "{name}: {enc} -> {out}"
            );
            assert!(!out.contains(&enc[..enc.len().min(12)]), "{name}: {out}");
        }
        // Base64 of the value inside a larger blob, at each byte offset.
        for lead in ["", "x", "xy"] {
            let blob = STANDARD.encode(format!("{lead}{secret}tail"));
            let out = masked(&[secret], &blob);
            assert!(out.matches('*').count() >= 4 * secret.len() / 3 - 2, "offset {}: {blob} -> {out}", lead.len());
        }
    }

    #[test]
    fn framing_headers_are_never_rewritten_and_trailers_are_masked() {
        let m = needles(&["12345"]).compile(None).unwrap();
        let mut h = HeaderMap::new();
        h.insert("content-length", "12345".parse().unwrap());
        h.insert("x-echo", "got 12345".parse().unwrap());
        m.mask_headers(&mut h);
        assert_eq!(h["content-length"], "12345");
        assert_eq!(h["x-echo"], "got *****");
    }
}
