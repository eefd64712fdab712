//! Content decoding for inspection (phase 6b): a response to an injected request must be read as
//! plain bytes before it is scanned for echoes of the credential, whatever the upstream chose.
//!
//! The pipeline asks upstreams for `Accept-Encoding: identity` on injected requests (the agent's
//! own `Accept-Encoding` is replaced), so a well-behaved upstream costs nothing here. An upstream
//! that compresses anyway is decoded as it streams (gzip, deflate, br, zstd) and the agent receives
//! identity; any other coding is refused (`unsupported_encoding`), never passed through unread.
//! `flate2`, `brotli` and `zstd` are used only here.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::upstream::BoxError;

/// The most output one input chunk may expand to (a decompression bomb ends the stream).
const MAX_EXPANSION: usize = 64 * 1024 * 1024;

/// What a response's `Content-Encoding` asks of the inspector.
#[derive(Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Decode(Kind),
    /// A coding (or a stack of codings) the proxy cannot read.
    Unsupported(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

/// Classifies a response's `Content-Encoding`.
pub fn coding(headers: &HeaderMap) -> Coding {
    let mut codings = Vec::new();
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else { return Coding::Unsupported("(not text)".into()) };
        codings.extend(
            text.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty() && c != "identity"),
        );
    }
    match codings.as_slice() {
        [] => Coding::Identity,
        [one] => match one.as_str() {
            "gzip" | "x-gzip" => Coding::Decode(Kind::Gzip),
            "deflate" => Coding::Decode(Kind::Deflate),
            "br" => Coding::Decode(Kind::Brotli),
            "zstd" => Coding::Decode(Kind::Zstd),
            other => Coding::Unsupported(other.to_owned()),
        },
        many => Coding::Unsupported(many.join(", ")),
    }
}

/// Output of a decoder: bounded per push.
struct Sink {
    buf: Vec<u8>,
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > MAX_EXPANSION {
            return Err(std::io::Error::other("the response expands past the inspection limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Gzip(flate2::write::MultiGzDecoder<Sink>),
    /// HTTP "deflate" is zlib-wrapped; some servers send raw deflate. Decided on the first byte.
    Deflate(Option<DeflateDecoder>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
    Zstd(zstd::stream::write::Decoder<'static, Sink>),
}

enum DeflateDecoder {
    Zlib(flate2::write::ZlibDecoder<Sink>),
    Raw(flate2::write::DeflateDecoder<Sink>),
}

fn sink() -> Sink {
    Sink { buf: Vec::new() }
}

impl Decoder {
    fn new(kind: Kind) -> std::io::Result<Decoder> {
        Ok(match kind {
            Kind::Gzip => Decoder::Gzip(flate2::write::MultiGzDecoder::new(sink())),
            Kind::Deflate => Decoder::Deflate(None),
            Kind::Brotli => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(sink(), 8192))),
            Kind::Zstd => Decoder::Zstd(zstd::stream::write::Decoder::new(sink())?),
        })
    }

    /// Feeds compressed bytes; returns what decoded so far.
    fn push(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Deflate(slot) => {
                let d = slot.get_or_insert_with(|| {
                    // A zlib header: CM = 8 and (CMF << 8 | FLG) divisible by 31.
                    let zlib = data.len() >= 2
                        && data[0] & 0x0f == 8
                        && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
                    if zlib {
                        DeflateDecoder::Zlib(flate2::write::ZlibDecoder::new(sink()))
                    } else {
                        DeflateDecoder::Raw(flate2::write::DeflateDecoder::new(sink()))
                    }
                });
                match d {
                    DeflateDecoder::Zlib(d) => {
                        d.write_all(data)?;
                        Ok(std::mem::take(&mut d.get_mut().buf))
                    }
                    DeflateDecoder::Raw(d) => {
                        d.write_all(data)?;
                        Ok(std::mem::take(&mut d.get_mut().buf))
                    }
                }
            }
            Decoder::Brotli(d) => {
                d.write_all(data)?;
                d.flush()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Zstd(d) => {
                d.write_all(data)?;
                d.flush()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
        }
    }

    /// Ends the stream; returns the rest.
    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => {
                d.try_finish()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Deflate(None) => Ok(Vec::new()),
            Decoder::Deflate(Some(DeflateDecoder::Zlib(d))) => {
                d.try_finish()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Deflate(Some(DeflateDecoder::Raw(d))) => {
                d.try_finish()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Brotli(d) => {
                d.close()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Zstd(d) => {
                d.flush()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
        }
    }
}

/// A response body decoded as it streams; trailers pass through.
pub struct Decoded<B> {
    inner: B,
    decoder: Decoder,
    done: bool,
}

impl<B> Decoded<B> {
    pub fn new(inner: B, kind: Kind) -> std::io::Result<Self> {
        Ok(Decoded { inner, decoder: Decoder::new(kind)?, done: false })
    }
}

/// Removes the headers that described the encoded body.
pub fn strip_encoding_headers(headers: &mut HeaderMap) {
    headers.remove(http::header::CONTENT_ENCODING);
    headers.remove(http::header::CONTENT_LENGTH);
}

impl<B> HttpBody for Decoded<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => match this.decoder.push(&data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => return Poll::Ready(Some(Err(decode_error(e)))),
                    },
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    return match this.decoder.finish() {
                        Ok(out) if out.is_empty() => Poll::Ready(None),
                        Ok(out) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => Poll::Ready(Some(Err(decode_error(e)))),
                    };
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

fn decode_error(e: std::io::Error) -> BoxError {
    format!("the upstream's compressed response could not be decoded for inspection: {e}").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ce: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in ce {
            h.append(http::header::CONTENT_ENCODING, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn classifies_content_encodings() {
        for (ce, want) in [
            (&[][..], Coding::Identity),
            (&["identity"], Coding::Identity),
            (&["gzip"], Coding::Decode(Kind::Gzip)),
            (&["X-GZIP"], Coding::Decode(Kind::Gzip)),
            (&["deflate"], Coding::Decode(Kind::Deflate)),
            (&["br"], Coding::Decode(Kind::Brotli)),
            (&["zstd"], Coding::Decode(Kind::Zstd)),
            (&["compress"], Coding::Unsupported("compress".into())),
            (&["gzip, br"], Coding::Unsupported("gzip, br".into())),
            (&["gzip", "gzip"], Coding::Unsupported("gzip, gzip".into())),
        ] {
            assert_eq!(coding(&headers(ce)), want, "{ce:?}");
        }
    }

    fn compress(kind: Kind, data: &[u8]) -> Vec<u8> {
        match kind {
            Kind::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Kind::Deflate => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Kind::Brotli => {
                let mut out = Vec::new();
                brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
                out
            }
            Kind::Zstd => zstd::stream::encode_all(data, 3).unwrap(),
        }
    }

    #[test]
    fn decodes_every_supported_coding_in_small_pushes() {
        let plain: Vec<u8> = (0..20_000u32).flat_map(|i| format!("line {i} sk-SECRET\n").into_bytes()).collect();
        for kind in [Kind::Gzip, Kind::Deflate, Kind::Brotli, Kind::Zstd] {
            let packed = compress(kind, &plain);
            let mut d = Decoder::new(kind).unwrap();
            let mut out = Vec::new();
            for chunk in packed.chunks(777) {
                out.extend(d.push(chunk).unwrap());
            }
            out.extend(d.finish().unwrap());
            assert_eq!(out, plain, "{kind:?}");
        }
        // Raw deflate (no zlib header) is accepted too.
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"raw deflate body").unwrap();
        let mut d = Decoder::new(Kind::Deflate).unwrap();
        let mut out = d.push(&e.finish().unwrap()).unwrap();
        out.extend(d.finish().unwrap());
        assert_eq!(out, b"raw deflate body");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for kind in [Kind::Gzip, Kind::Deflate, Kind::Brotli, Kind::Zstd] {
            let mut d = Decoder::new(kind).unwrap();
            let pushed = d.push(b"\x00\x01definitely not compressed\xff\xfe");
            let finished = d.finish();
            assert!(pushed.is_err() || finished.is_err() || finished.is_ok_and(|v| v.is_empty()), "{kind:?}");
        }
    }
}
