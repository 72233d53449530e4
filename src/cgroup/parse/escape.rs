//! The octal escapes of `/proc/<pid>/mountinfo`.
//!
//! The kernel writes a space, tab, newline or backslash in a mount point,
//! root, source or option as `\040`, `\011`, `\012` or `\134`, so that spaces
//! can separate fields. Decoding must happen in one left-to-right pass: after
//! `\134` has become a backslash, that backslash must not start another
//! escape, or a directory really named `\040` would turn into a space (and
//! a container's mount would be looked up at the wrong path).

use std::borrow::Cow;

/// The bytes the kernel escapes in mountinfo fields (`mangle()` in
/// `fs/proc_namespace.c`).
const ESCAPED: &[u8] = b" \t\n\\";

/// Decodes `\ooo` octal escapes in one pass.
///
/// Any backslash followed by three octal digits with a value up to `\377` is
/// one byte; any other backslash is kept as it is (the kernel never writes a
/// bare backslash, but a hand-written file might). Borrows when there is
/// nothing to decode.
///
/// ```
/// use ctrmon::cgroup::parse::escape::unescape;
/// assert_eq!(&*unescape(br"/mnt/my\040disk"), b"/mnt/my disk");
/// // `\134` is a backslash, and the `040` after it stays literal.
/// assert_eq!(&*unescape(br"/a\134040"), br"/a\040");
/// ```
pub fn unescape(field: &[u8]) -> Cow<'_, [u8]> {
    if !field.contains(&b'\\') {
        return Cow::Borrowed(field);
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' {
            if let Some(byte) = octal_at(field, i + 1) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// The byte encoded by the three octal digits at `field[at..at + 3]`, if they
/// are there and encode a value up to 255.
fn octal_at(field: &[u8], at: usize) -> Option<u8> {
    let digits = field.get(at..at.checked_add(3)?)?;
    let mut value: u16 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value * 8 + u16::from(d - b'0');
    }
    u8::try_from(value).ok()
}

/// Escapes a space, tab, newline or backslash as `\ooo`, as the kernel does;
/// [`unescape`] reverses it for every input. Borrows when nothing needs
/// escaping.
///
/// ```
/// use ctrmon::cgroup::parse::escape::escape;
/// assert_eq!(&*escape(b"/mnt/my disk"), br"/mnt/my\040disk");
/// ```
pub fn escape(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|b| ESCAPED.contains(b)) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + 8);
    for &b in raw {
        if ESCAPED.contains(&b) {
            out.extend_from_slice(&[
                b'\\',
                b'0' + (b >> 6),
                b'0' + ((b >> 3) & 7),
                b'0' + (b & 7),
            ]);
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_four_kernel_escapes() {
        assert_eq!(&*unescape(br"a\040b\011c\012d\134e"), b"a b\tc\nd\\e");
    }

    #[test]
    fn one_pass_does_not_decode_twice() {
        assert_eq!(&*unescape(br"\134040"), br"\040");
        assert_eq!(&*unescape(br"\134\134040"), br"\\040");
        assert_eq!(&*unescape(br"\134134"), br"\134");
    }

    #[test]
    fn leaves_malformed_escapes_alone() {
        assert_eq!(&*unescape(br"\"), br"\");
        assert_eq!(&*unescape(br"a\04"), br"a\04");
        assert_eq!(&*unescape(br"\08x"), br"\08x");
        assert_eq!(&*unescape(br"\400"), br"\400");
        assert_eq!(&*unescape(br"\377"), [0xff]);
        assert_eq!(&*unescape(br"\x20"), br"\x20");
    }

    #[test]
    fn borrows_when_clean() {
        assert!(matches!(unescape(b"/sys/fs/cgroup"), Cow::Borrowed(_)));
        assert!(matches!(escape(b"/sys/fs/cgroup"), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_round_trips() {
        let samples: [&[u8]; 6] = [
            b"",
            b"plain",
            b"with space\tand\nnewline",
            br"back\slash",
            br"\040 literal",
            &[0, 255, b'\\', b'0', b'4', b'0'],
        ];
        for s in samples {
            assert_eq!(&*unescape(&escape(s)), s, "{s:?}");
        }
        assert_eq!(&*escape(br"\040"), br"\134040");
    }
}
