//! The paging cursor: where a query stands, sealed with AES-256-GCM-SIV so that a client can
//! neither read nor change it. A cursor that was tampered with, cut short, made with another
//! key, or made for another store, signal or API key does not open (a 400, never someone
//! else's data). GCM-SIV, because the key lives long and nonces are random: a repeated nonce
//! then reveals at most that two cursors are equal, never the key stream.
//!
//! The key is 32 bytes, given as 64 hex characters in `SLIM_NODE_CURSOR_KEY` or in
//! `--cursor-key-file`, or generated into `DATA_DIR/cursor.key` (mode 0600) on first start, so
//! that cursors survive a restart.
//!
//! A cursor is good for [`CURSOR_TTL`] after the page that issued it: resuming an old one
//! would make the store look at everything that arrived since, so it is refused instead
//! (a 400 that says to start again from a time).

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV, NONCE_LEN};
use base64::Engine;

use super::catalog::{Mark, MAX_STORES};
use super::store::{Place, Window};
use otlp::Signal;

/// Format version, the first byte of the sealed text.
const VERSION: u8 = 3;
/// version, signal, flags, then 10 numbers of 8 bytes (the last: when it was issued), then
/// the number of marks (2 bytes) and 24 bytes for each.
const FIXED_LEN: usize = 3 + 10 * 8 + 2;
/// Bytes of one [`Mark`].
const MARK_LEN: usize = 24;
/// How long after its page a cursor opens.
pub const CURSOR_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where a query stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The query's start (inclusive).
    pub start: u64,
    /// The end the query asked for; `None`: now, whenever a window opens.
    pub end: Option<u64>,
    /// The window being paged, once opened; with `None`, the next request opens one after
    /// the previous window (`prev_end`, `prev_seq`).
    pub window: Option<Window>,
    /// The previous window's end and newest item (where the next window begins).
    pub prev_end: u64,
    /// See `prev_end`.
    pub prev_seq: u64,
    /// Other stores' marks in the bucket: of `window`, or (without one) of the previous
    /// window.
    pub marks: Vec<Mark>,
    /// The last item returned in `window`.
    pub after: Option<Place>,
}

/// A cursor that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CursorError {
    /// Not base64url, cut short, changed, sealed with another key or for another query.
    #[error("the cursor is not valid: it was changed, cut short, or made by another node, API key or signal; start again without a cursor")]
    Invalid,
    /// Issued longer than [`CURSOR_TTL`] ago.
    #[error("the cursor expired: a cursor is good for 1 h after its page; start again without it, from the time you had reached (startTimeUnixNano)")]
    Expired,
}

/// Seals and opens cursors.
pub struct Sealer {
    key: LessSafeKey,
}

/// The cursor key cannot be read or made.
#[derive(Debug, thiserror::Error)]
#[error("cursor key {path}: {message}")]
pub struct KeyError {
    path: String,
    message: String,
}

impl Sealer {
    /// The sealer of `key`.
    pub fn new(key: &[u8; 32]) -> Sealer {
        // 32 bytes is AES-256's key length: this cannot fail.
        let unbound = UnboundKey::new(&AES_256_GCM_SIV, key).unwrap_or_else(|_| unreachable!());
        Sealer {
            key: LessSafeKey::new(unbound),
        }
    }

    /// The key given as `text` (64 hex characters, e.g. from a variable), else the one in
    /// `path`, else the one kept in `data_dir`, generated there on first use.
    pub fn load(
        text: Option<&str>,
        path: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Sealer, KeyError> {
        if let Some(text) = text {
            return Sealer::from_hex(text).map_err(|message| KeyError {
                path: "from SLIM_NODE_CURSOR_KEY or --cursor-key".into(),
                message,
            });
        }
        let generated = data_dir.join("cursor.key");
        let path = path.unwrap_or(&generated);
        let err = |message: String| KeyError {
            path: path.display().to_string(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == generated => {
                let mut key = [0u8; 32];
                aws_lc_rs::rand::fill(&mut key).map_err(|_| err("no randomness".into()))?;
                write_private(path, &hex::encode(key)).map_err(|e| err(e.to_string()))?;
                tracing::info!(path = %path.display(), "generated a cursor key");
                return Ok(Sealer::new(&key));
            }
            Err(e) => return Err(err(format!("cannot read it: {e}"))),
        };
        Sealer::from_hex(&text).map_err(err)
    }

    fn from_hex(text: &str) -> Result<Sealer, String> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            "expected 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`".to_string()
        })?;
        Ok(Sealer::new(&key))
    }

    /// `cursor` sealed for the store `store_id`, `signal` and the API key named `key_name`,
    /// issued at `now_unix_nano`.
    pub fn seal(
        &self,
        cursor: &Cursor,
        store_id: u64,
        signal: Signal,
        key_name: &str,
        now_unix_nano: u64,
    ) -> String {
        let mut text = plain(cursor, signal, now_unix_nano);
        let mut nonce = [0u8; NONCE_LEN];
        // Without randomness no cursor can be made safely; an empty one fails to open.
        if aws_lc_rs::rand::fill(&mut nonce).is_err() {
            return String::new();
        }
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(store_id, signal, key_name)),
                &mut text,
            )
            .is_err()
        {
            return String::new();
        }
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&text);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
    }

    /// Opens a cursor sealed by [`Sealer::seal`] for `store_id`, `signal` and `key_name`,
    /// unless it was issued more than [`CURSOR_TTL`] before `now_unix_nano`.
    pub fn open(
        &self,
        text: &str,
        store_id: u64,
        signal: Signal,
        key_name: &str,
        now_unix_nano: u64,
    ) -> Result<Cursor, CursorError> {
        let mut sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| CursorError::Invalid)?;
        let longest = NONCE_LEN + FIXED_LEN + MAX_STORES * MARK_LEN + AES_256_GCM_SIV.tag_len();
        if sealed.len() < NONCE_LEN + FIXED_LEN + AES_256_GCM_SIV.tag_len()
            || sealed.len() > longest
        {
            return Err(CursorError::Invalid);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN])
            .map_err(|_| CursorError::Invalid)?;
        let plain = self
            .key
            .open_in_place(
                nonce,
                Aad::from(aad(store_id, signal, key_name)),
                &mut sealed[NONCE_LEN..],
            )
            .map_err(|_| CursorError::Invalid)?;
        let (cursor, issued) = parse(plain, signal)?;
        if now_unix_nano.saturating_sub(issued) > CURSOR_TTL.as_nanos() as u64 {
            return Err(CursorError::Expired);
        }
        Ok(cursor)
    }
}

/// What the seal binds besides the text: the store, the signal and the API key's name.
fn aad(store_id: u64, signal: Signal, key_name: &str) -> Vec<u8> {
    format!("slim-node cursor v{VERSION}\0{store_id:016x}\0{signal}\0{key_name}").into_bytes()
}

const HAS_END: u8 = 1;
const HAS_WINDOW: u8 = 2;
const HAS_AFTER: u8 = 4;

fn plain(c: &Cursor, signal: Signal, issued: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_LEN + c.marks.len() * MARK_LEN);
    out.push(VERSION);
    out.push(signal as u8);
    out.push(
        (u8::from(c.end.is_some()) * HAS_END)
            | (u8::from(c.window.is_some()) * HAS_WINDOW)
            | (u8::from(c.after.is_some()) * HAS_AFTER),
    );
    let w = c.window;
    let numbers = [
        c.start,
        c.end.unwrap_or(0),
        w.map_or(0, |w| w.end),
        w.map_or(0, |w| w.seq_hi),
        c.prev_end,
        c.prev_seq,
        c.after.map_or(0, |a| a.0),
        c.after.map_or(0, |a| a.1),
        c.after.map_or(0, |a| a.2),
        issued,
    ];
    for n in numbers {
        out.extend_from_slice(&n.to_be_bytes());
    }
    // The catalog never makes more than MAX_STORES marks.
    let marks = &c.marks[..c.marks.len().min(MAX_STORES)];
    out.extend_from_slice(&(marks.len() as u16).to_be_bytes());
    for m in marks {
        for n in [m.store, m.seq_hi, m.prev_seq] {
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out
}

/// The cursor and when it was issued.
fn parse(text: &[u8], signal: Signal) -> Result<(Cursor, u64), CursorError> {
    if text.len() < FIXED_LEN || text[0] != VERSION || text[1] != signal as u8 {
        return Err(CursorError::Invalid);
    }
    let flags = text[2];
    let at = |offset: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&text[offset..offset + 8]);
        u64::from_be_bytes(bytes)
    };
    let n = |i: usize| at(3 + 8 * i);
    let count = usize::from(u16::from_be_bytes([
        text[FIXED_LEN - 2],
        text[FIXED_LEN - 1],
    ]));
    if count > MAX_STORES || text.len() != FIXED_LEN + count * MARK_LEN {
        return Err(CursorError::Invalid);
    }
    let marks = (0..count)
        .map(|i| {
            let base = FIXED_LEN + i * MARK_LEN;
            Mark {
                store: at(base),
                seq_hi: at(base + 8),
                prev_seq: at(base + 16),
            }
        })
        .collect();
    let (start, prev_end, prev_seq) = (n(0), n(4), n(5));
    let cursor = Cursor {
        start,
        end: (flags & HAS_END != 0).then(|| n(1)),
        window: (flags & HAS_WINDOW != 0).then(|| Window {
            signal,
            start,
            end: n(2),
            seq_hi: n(3),
            prev_end,
            prev_seq,
        }),
        prev_end,
        prev_seq,
        marks,
        after: (flags & HAS_AFTER != 0).then(|| (n(6), n(7), n(8))),
    };
    Ok((cursor, n(9)))
}

/// Writes `text` to a new file only its owner can read, whole or not at all (written
/// beside it, synced, then renamed into place).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension("key.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When the tests' cursors are issued and opened.
    const T0: u64 = 1_800_000_000_000_000_000;

    fn cursor() -> Cursor {
        Cursor {
            start: 5,
            end: None,
            window: Some(Window {
                signal: Signal::Traces,
                start: 5,
                end: 99,
                seq_hi: 7,
                prev_end: 5,
                prev_seq: 0,
            }),
            prev_end: 5,
            prev_seq: 0,
            marks: vec![Mark {
                store: 9,
                seq_hi: 70,
                prev_seq: 3,
            }],
            after: Some((42, 1, 3)),
        }
    }

    #[test]
    fn a_sealed_cursor_opens_to_what_was_sealed() {
        let sealer = Sealer::new(&[7; 32]);
        let text = sealer.seal(&cursor(), 1, Signal::Traces, "team-a", T0);
        assert_eq!(
            sealer.open(&text, 1, Signal::Traces, "team-a", T0),
            Ok(cursor())
        );
    }

    #[test]
    fn every_flipped_bit_makes_the_cursor_invalid() {
        let sealer = Sealer::new(&[7; 32]);
        let text = sealer.seal(&cursor(), 1, Signal::Traces, "k", T0);
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&text)
            .unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(flipped);
            assert_eq!(
                sealer.open(&text, 1, Signal::Traces, "k", T0),
                Err(CursorError::Invalid),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn a_truncated_foreign_or_misdirected_cursor_is_invalid() {
        let sealer = Sealer::new(&[7; 32]);
        let text = sealer.seal(&cursor(), 1, Signal::Traces, "k", T0);
        let invalid = Err(CursorError::Invalid);
        let open = |text: &str, store: u64, signal: Signal, key: &str| {
            sealer.open(text, store, signal, key, T0)
        };
        assert_eq!(
            open(&text[..text.len() - 4], 1, Signal::Traces, "k"),
            invalid
        );
        assert_eq!(open("", 1, Signal::Traces, "k"), invalid);
        assert_eq!(open("not base64 !", 1, Signal::Traces, "k"), invalid);
        let other_key = Sealer::new(&[8; 32]);
        assert_eq!(other_key.open(&text, 1, Signal::Traces, "k", T0), invalid);
        assert_eq!(open(&text, 1, Signal::Logs, "k"), invalid);
        assert_eq!(open(&text, 1, Signal::Traces, "other-key"), invalid);
        assert_eq!(
            open(&text, 2, Signal::Traces, "k"),
            invalid,
            "another store"
        );
    }

    #[test]
    fn the_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Sealer::load(None, None, dir.path()).unwrap();
        let text = first.seal(&cursor(), 1, Signal::Traces, "", T0);
        let again = Sealer::load(None, None, dir.path()).unwrap();
        assert_eq!(again.open(&text, 1, Signal::Traces, "", T0), Ok(cursor()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("cursor.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_key_file_that_is_not_32_hex_bytes_is_refused_with_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "abc").unwrap();
        let err = Sealer::load(None, Some(&path), dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("openssl rand -hex 32"), "{err}");
        let missing = Sealer::load(None, Some(&dir.path().join("none")), dir.path());
        assert!(missing.is_err());
    }

    #[test]
    fn a_key_given_as_text_comes_before_the_file_and_a_bad_one_is_named_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "cd".repeat(32)).unwrap();
        let sealer = Sealer::load(Some(&"ab".repeat(32)), Some(&path), dir.path()).unwrap();
        let text = sealer.seal(&cursor(), 1, Signal::Traces, "", T0);
        let from_text = Sealer::new(&[0xab; 32]);
        assert_eq!(
            from_text.open(&text, 1, Signal::Traces, "", T0),
            Ok(cursor())
        );
        let err = Sealer::load(Some("0123"), None, dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("SLIM_NODE_CURSOR_KEY") && !err.contains("0123"),
            "{err}"
        );
    }

    #[test]
    fn a_cursor_opens_for_an_hour_after_its_page_and_then_is_expired() {
        let sealer = Sealer::new(&[7; 32]);
        let text = sealer.seal(&cursor(), 1, Signal::Traces, "k", T0);
        let hour = CURSOR_TTL.as_nanos() as u64;
        assert_eq!(
            sealer.open(&text, 1, Signal::Traces, "k", T0 + hour),
            Ok(cursor())
        );
        let late = sealer.open(&text, 1, Signal::Traces, "k", T0 + hour + 1);
        assert_eq!(late, Err(CursorError::Expired));
        assert!(CursorError::Expired
            .to_string()
            .contains("startTimeUnixNano"));
    }
}
