//! Response redaction: an upstream that echoes the injected credential (a debug endpoint, an
//! error page quoting the request) must not hand it to the agent.
//!
//! Every occurrence of an injected value is masked with `*` of the same length, so framing
//! (`Content-Length`) stays valid. Only a tail that could be the start of a value is held back
//! between chunks, so streams (SSE) are not delayed. Compressed bodies are not inspected.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use zeroize::Zeroizing;

use super::upstream::BoxError;

/// Values shorter than this are not treated as secrets (too likely to occur by chance).
pub const MIN_SECRET_LEN: usize = 8;

/// The byte strings to mask; zeroized when the response ends.
#[derive(Default)]
pub struct Needles(Vec<Zeroizing<Vec<u8>>>);

impl Needles {
    pub fn push(&mut self, value: &[u8]) {
        if value.len() >= MIN_SECRET_LEN && !self.0.iter().any(|n| n.as_slice() == value) {
            self.0.push(Zeroizing::new(value.to_vec()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Masks every occurrence in place; returns whether anything was masked.
    pub fn mask(&self, buf: &mut [u8]) -> bool {
        let mut hit = false;
        for needle in &self.0 {
            let finder = memchr::memmem::Finder::new(needle.as_slice());
            let mut from = 0;
            while let Some(at) = finder.find(&buf[from..]) {
                let start = from + at;
                buf[start..start + needle.len()].fill(b'*');
                from = start + needle.len();
                hit = true;
            }
        }
        hit
    }

    /// The length of the longest tail of `buf` that is a proper prefix of some needle.
    fn pending_prefix(&self, buf: &[u8]) -> usize {
        let mut best = 0;
        for needle in &self.0 {
            let max = (needle.len() - 1).min(buf.len());
            for k in (best + 1..=max).rev() {
                if buf[buf.len() - k..] == needle[..k] {
                    best = k;
                    break;
                }
            }
        }
        best
    }

    /// Masks header values that contain a needle.
    pub fn mask_headers(&self, headers: &mut HeaderMap) {
        for value in headers.values_mut() {
            let mut bytes = value.as_bytes().to_vec();
            if self.mask(&mut bytes) {
                if let Ok(v) = http::HeaderValue::from_bytes(&bytes) {
                    *value = v;
                }
            }
        }
    }
}

/// A response body with needles masked.
pub struct Redacted<B> {
    inner: B,
    needles: Needles,
    carry: BytesMut,
    trailers: Option<Frame<Bytes>>,
    done: bool,
}

impl<B> Redacted<B> {
    pub fn new(inner: B, needles: Needles) -> Self {
        Redacted { inner, needles, carry: BytesMut::new(), trailers: None, done: false }
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
                    Ok(data) => {
                        this.carry.extend_from_slice(&data);
                        let mut buf = std::mem::take(&mut this.carry);
                        this.needles.mask(&mut buf);
                        let keep = this.needles.pending_prefix(&buf);
                        this.carry = buf.split_off(buf.len() - keep);
                        if buf.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(buf.freeze()))));
                    }
                    Err(frame) => {
                        // Trailers: flush what is held back first (it cannot be a whole needle).
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
    use http_body_util::{BodyExt as _, StreamBody};

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
        let mut r = Redacted::new(body, needles(list));
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
        let (_, joined) = run(&["short"], &["short"]).await;
        assert_eq!(joined, "short", "values under MIN_SECRET_LEN are not masked");
    }
}
