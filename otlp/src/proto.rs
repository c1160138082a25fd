//! Protobuf's wire format read in place: varints and length-delimited values, read the way
//! prost's decoder reads them, so that what is read here and what the decoder takes agree.

/// Reads a varint the way the decoder does: at most ten bytes, no bits past the 64th.
#[inline(always)]
pub(crate) fn varint(buf: &mut &[u8]) -> Option<u64> {
    // Keys and most lengths are one byte.
    if let Some((&byte, rest)) = buf.split_first() {
        if byte < 0x80 {
            *buf = rest;
            return Some(u64::from(byte));
        }
    }
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *buf.get(i)?;
        if i == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Takes a length-delimited field's contents.
#[inline(always)]
pub(crate) fn take<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(buf)?).ok()?;
    let (contents, rest) = buf.split_at_checked(len)?;
    *buf = rest;
    Some(contents)
}

/// Steps over a value of wire type `wire`; `None` for groups (left to the decoder) and for a
/// value cut short.
#[inline(always)]
pub(crate) fn skip(wire: u8, buf: &mut &[u8]) -> Option<()> {
    match wire {
        0 => varint(buf).map(drop),
        1 => buf.get(8..).map(|rest| *buf = rest),
        2 => take(buf).map(drop),
        5 => buf.get(4..).map(|rest| *buf = rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_varints_are_refused() {
        let mut buf: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(varint(&mut buf), None);
        let mut buf: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&mut buf), Some(u64::MAX));
    }

    #[test]
    fn a_length_past_the_end_is_refused() {
        let mut buf: &[u8] = &[3, b'a', b'b'];
        assert_eq!(take(&mut buf), None);
        let mut buf: &[u8] = &[2, b'a', b'b', b'c'];
        assert_eq!(take(&mut buf), Some(&b"ab"[..]));
        assert_eq!(buf, b"c");
    }
}
