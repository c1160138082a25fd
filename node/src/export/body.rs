//! A request body as the parts it is made of. Protobuf requests of one signal back to back are
//! one valid request, so a batch of received requests is sent as it lies in memory: over
//! plain-text OTLP/HTTP (HTTP/1.1) the parts go out one after the other, never copied into
//! one buffer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// A body in parts, in order.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    parts: VecDeque<Bytes>,
    len: usize,
}

impl Parts {
    /// Bytes of all the parts.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The parts put together (a single part is not copied when nothing else holds it).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.parts.len() == 1 {
            if let Some(one) = self.parts.pop_front() {
                return Vec::from(one);
            }
        }
        let mut out = Vec::with_capacity(self.len);
        for part in &self.parts {
            out.extend_from_slice(part);
        }
        out
    }

    /// An HTTP body that sends the parts one after the other, with their exact length. It
    /// cannot be sent twice: reqwest's own resending after an HTTP/2 GOAWAY does not apply.
    pub fn into_body(self) -> reqwest::Body {
        reqwest::Body::wrap(self)
    }
}

impl From<Vec<u8>> for Parts {
    fn from(bytes: Vec<u8>) -> Parts {
        Parts::from(Bytes::from(bytes))
    }
}

impl From<Bytes> for Parts {
    fn from(bytes: Bytes) -> Parts {
        std::iter::once(bytes).collect()
    }
}

impl FromIterator<Bytes> for Parts {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Parts {
        let parts: VecDeque<Bytes> = iter.into_iter().filter(|b| !b.is_empty()).collect();
        let len = parts.iter().map(Bytes::len).sum();
        Parts { parts, len }
    }
}

impl http_body::Body for Parts {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.pop_front();
        if let Some(part) = &next {
            self.len -= part.len();
        }
        Poll::Ready(next.map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_put_together_are_their_concatenation() {
        let parts: Parts = [
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ]
        .into_iter()
        .collect();
        assert_eq!(parts.len(), 5);
        assert_eq!(parts.into_vec(), b"abcde");
    }

    #[test]
    fn a_single_part_is_not_copied() {
        let bytes = b"one request".to_vec();
        let at = bytes.as_ptr();
        let back = Parts::from(bytes).into_vec();
        assert_eq!(back.as_ptr(), at);
    }

    #[tokio::test]
    async fn the_body_sends_every_part_in_order_with_its_exact_length() {
        use http_body::Body as _;
        use http_body_util::BodyExt;
        let parts: Parts = [Bytes::from_static(b"ab"), Bytes::from_static(b"cde")]
            .into_iter()
            .collect();
        assert_eq!(parts.size_hint().exact(), Some(5));
        let collected = parts.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcde");
    }
}
