//! What reaches the log, and how: one line per event, whatever the event's text holds (SLIM's
//! errors print their causes on lines of their own), each warning or error repeated within a
//! window shown once with a count, and SLIM's own complaints once the node tears its
//! connections down (after the drain) left out: at a clean shutdown there is nothing to act on.
//!
//! It sits between the formatter and stderr ([`Hygiene`] is the fmt layer's writer), so it
//! sees each event's finished line with its level and target.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// A warning repeated within this is counted, not shown again.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// Distinct warnings remembered at most (older ones are forgotten first).
const REMEMBERED: usize = 1024;

static STOPPING: AtomicBool = AtomicBool::new(false);

/// The process tears its SLIM side down (a server stopping): from now on SLIM's warnings and
/// errors are left out. A node says so itself once its drain is over
/// ([`slim_roles::LEAVING`]).
pub fn stopping() {
    STOPPING.store(true, Ordering::Relaxed);
}

/// Targets whose lines are rate-limited already, with their own count.
const LIMITED_ALREADY: &[&str] = &["slim_node::net::sample"];

/// Whether `target` is one of SLIM's crates (not slim-node's own).
fn is_slims(target: &str) -> bool {
    target.starts_with("slim_")
        && !target.starts_with("slim_node")
        && !target.starts_with("slim_roles")
}

/// SLIM warnings that say nothing a user can act on, by target and text: what the node logs
/// itself says it better.
const SLIM_NOISE: &[(&str, &str)] = &[
    // The moderator closed the group session; the participant logs that it did.
    (
        "slim_session::session_layer",
        "requested to delete unknown session",
    ),
];

/// The fmt layer's writer: cleans each event's line up and writes it to `out`.
pub struct Hygiene<W> {
    out: W,
    seen: Mutex<HashMap<String, Seen>>,
    /// Any of them set: the node tears its connections down ([`stopping`] and
    /// [`slim_roles::LEAVING`] for the process's log).
    stopping: Vec<&'static AtomicBool>,
}

/// A warning already shown: when, and how many like it were left out since.
struct Seen {
    shown: Instant,
    left_out: u64,
}

impl<W> Hygiene<W> {
    /// Writes to `out`; [`stopping`] says when the node stops.
    pub fn new(out: W) -> Hygiene<W> {
        Hygiene::stopping_with(out, vec![&STOPPING, &slim_roles::LEAVING])
    }

    fn stopping_with(out: W, stopping: Vec<&'static AtomicBool>) -> Hygiene<W> {
        Hygiene {
            out,
            seen: Mutex::new(HashMap::new()),
            stopping,
        }
    }

    /// `line` (one event, formatted) as it is written, or `None` to leave it out.
    fn clean(&self, level: Level, target: &str, line: &str, now: Instant) -> Option<String> {
        let warns = level <= Level::WARN;
        if warns && is_slims(target) {
            if self.stopping.iter().any(|s| s.load(Ordering::Relaxed)) {
                return None;
            }
            if SLIM_NOISE
                .iter()
                .any(|(t, text)| target == *t && line.contains(text))
            {
                return None;
            }
        }
        let mut line = one_line(line);
        if warns && !LIMITED_ALREADY.contains(&target) {
            // The same warning: the same text but for its numbers (a count, an address, an
            // error code; not digits within a name such as `eu1`).
            let key = mask_numbers(
                line.split_once(' ')
                    .map_or(line.as_str(), |(_time, rest)| rest),
            );
            let mut seen = crate::lock(&self.seen);
            match seen.get_mut(&key) {
                Some(s) if now.duration_since(s.shown) < REPEAT_WINDOW => {
                    s.left_out += 1;
                    return None;
                }
                Some(s) => {
                    if s.left_out > 0 {
                        line.push_str(&format!(
                            " (and {} more like it in the {} s before)",
                            s.left_out,
                            now.duration_since(s.shown).as_secs()
                        ));
                    }
                    *s = Seen {
                        shown: now,
                        left_out: 0,
                    };
                }
                None => {
                    if seen.len() >= REMEMBERED {
                        forget_oldest(&mut seen);
                    }
                    seen.insert(
                        key,
                        Seen {
                            shown: now,
                            left_out: 0,
                        },
                    );
                }
            }
        }
        line.push('\n');
        Some(line)
    }
}

/// `text` with each number standing on its own (digits, dots and colons between two
/// characters that are neither letters nor digits: `111`, `2.5`, `127.0.0.1:4318`) as `#`.
fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut after_word = false;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_digit() && !after_word {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .unwrap_or(rest.len());
            let followed_by_word = rest[end..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric());
            if !followed_by_word {
                out.push('#');
                rest = &rest[end..];
                after_word = false;
                continue;
            }
        }
        after_word = c.is_alphanumeric() || c == '_' || c == '-';
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Forgets the half of `seen` shown longest ago.
fn forget_oldest(seen: &mut HashMap<String, Seen>) {
    let mut times: Vec<Instant> = seen.values().map(|s| s.shown).collect();
    times.sort_unstable();
    let cut = times[times.len() / 2];
    seen.retain(|_, s| s.shown > cut);
}

/// `text` on one line: an error's causes, printed on lines of their own (`Caused by:` then
/// `-> cause` each), follow its message after `: `, each once.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The last thing said: the first line's last value (after `=` or `: `), then each cause.
    let mut last = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line == "Caused by:" {
            continue;
        }
        let cause = line.strip_prefix("->").map(str::trim_start);
        let part = cause.unwrap_or(line);
        if i == 0 {
            let value = line.rsplit(['=', ':']).next().unwrap_or(line).trim();
            last = value.to_string();
        } else {
            // A cause often repeats the message's error or the cause before it.
            if part == last {
                continue;
            }
            out.push_str(if cause.is_some() { ": " } else { " " });
            last = part.to_string();
        }
        out.push_str(part);
    }
    out
}

impl<'a, W: Write + 'a> MakeWriter<'a> for Hygiene<W>
where
    for<'w> &'w W: Write,
{
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            to: self,
            level: Level::INFO,
            target: String::new(),
            text: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            to: self,
            level: *meta.level(),
            target: meta.target().to_string(),
            text: Vec::new(),
        }
    }
}

/// One event's line, written (cleaned) when dropped.
pub struct Line<'a, W>
where
    for<'w> &'w W: Write,
{
    to: &'a Hygiene<W>,
    level: Level,
    target: String,
    text: Vec<u8>,
}

impl<W> Write for Line<'_, W>
where
    for<'w> &'w W: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W> Drop for Line<'_, W>
where
    for<'w> &'w W: Write,
{
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.text);
        if let Some(line) = self
            .to
            .clean(self.level, &self.target, &text, Instant::now())
        {
            // Nowhere to report a log that cannot be written.
            let _ = (&self.to.out).write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = "2026-12-05T21:54:58.319761Z  WARN slim_config::client: transient connect error, retrying error=transport error\nCaused by:\n  -> transport error\n  -> tcp connect error\n  -> tcp connect error\n  -> Connection refused (os error 111)\n";

    #[test]
    fn an_error_with_its_causes_is_one_line_each_cause_once() {
        assert_eq!(
            one_line(CHAIN),
            "2026-12-05T21:54:58.319761Z  WARN slim_config::client: transient connect error, retrying error=transport error: tcp connect error: Connection refused (os error 111)"
        );
    }

    #[test]
    fn a_warning_repeated_within_the_window_is_counted_and_shown_with_the_next_one_after_it() {
        let log = Hygiene::new(io::sink());
        let at = Instant::now();
        let warn = |line: &str, after: u64| {
            log.clean(
                Level::WARN,
                "slim_config::client",
                line,
                at + Duration::from_secs(after),
            )
        };
        assert!(warn(CHAIN, 0).is_some());
        let later = CHAIN.replace("21:54:58.319761", "21:55:01.128804");
        assert_eq!(warn(&later, 3), None);
        assert_eq!(warn(&later, 6), None);
        let shown = warn(&later, 11).expect("shown after the window");
        assert!(
            shown.ends_with("(and 2 more like it in the 11 s before)\n"),
            "{shown}"
        );
        assert!(
            warn(
                "2026-12-05T21:55:02Z  WARN slim_config::client: another thing\n",
                12
            )
            .is_some(),
            "another warning is shown"
        );
    }

    #[test]
    fn warnings_that_differ_in_a_name_are_each_shown_and_in_a_number_only_once() {
        let log = Hygiene::new(io::sink());
        let now = Instant::now();
        let warn = |line: &str| log.clean(Level::WARN, "slim_roles::liveness", line, now);
        assert!(warn("t1 WARN x: member is offline member=acme/otel/eu1\n").is_some());
        assert!(warn("t2 WARN x: member is offline member=acme/otel/eu2\n").is_some());
        assert!(warn("t3 WARN x: refused addr=127.0.0.1:4318 (os error 111)\n").is_some());
        assert_eq!(
            warn("t4 WARN x: refused addr=127.0.0.1:4319 (os error 113)\n"),
            None
        );
    }

    #[test]
    fn a_cause_that_only_ends_like_the_message_is_kept() {
        assert_eq!(
            one_line("t WARN x: lost error=connection closed\nCaused by:\n  -> closed\n"),
            "t WARN x: lost error=connection closed: closed"
        );
    }

    #[test]
    fn samples_keep_their_own_limit() {
        let log = Hygiene::new(io::sink());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(log
                .clean(
                    Level::WARN,
                    "slim_node::net::sample",
                    "t WARN s: 503\n",
                    now
                )
                .is_some());
        }
    }

    #[test]
    fn information_is_never_held_back() {
        let log = Hygiene::new(io::sink());
        let info = "2026-12-05T21:56:09Z  INFO slim_roles::ctx: state change\n";
        for _ in 0..3 {
            assert!(log
                .clean(Level::INFO, "slim_roles::ctx", info, Instant::now())
                .is_some());
        }
    }

    #[test]
    fn once_the_node_stops_slims_warnings_and_errors_are_left_out_and_its_own_are_not() {
        let stopping: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let log = Hygiene::stopping_with(io::sink(), vec![stopping]);
        let now = Instant::now();
        let closed =
            "t ERROR slim_service::app: slim channel closed, stopping message processing loop\n";
        assert!(log
            .clean(Level::ERROR, "slim_service::app", closed, now)
            .is_some());
        stopping.store(true, Ordering::Relaxed);
        let later = now + REPEAT_WINDOW * 2;
        assert_eq!(
            log.clean(Level::ERROR, "slim_service::app", closed, later),
            None
        );
        assert!(log
            .clean(
                Level::WARN,
                "slim_node::sink",
                "t WARN slim_node::sink: x\n",
                later
            )
            .is_some());
    }

    #[test]
    fn slims_noise_is_left_out_and_slim_nodes_own_warnings_are_not() {
        let log = Hygiene::new(io::sink());
        let now = Instant::now();
        assert_eq!(
            log.clean(
                Level::WARN,
                "slim_session::session_layer",
                "t WARN slim_session::session_layer: requested to delete unknown session session_id=4\n",
                now
            ),
            None
        );
        assert!(log
            .clean(
                Level::WARN,
                "slim_roles::node",
                "t WARN slim_roles::node: x\n",
                now
            )
            .is_some());
    }
}
