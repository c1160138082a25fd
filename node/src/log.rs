//! What reaches the log, and how: one line per event, whatever the event's text holds (SLIM's
//! errors print their causes on lines of their own), each warning or error repeated within a
//! window shown once with a count, and SLIM's own complaints while the node stops (it tears its
//! connections down) left out: at a clean shutdown there is nothing to act on.
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

/// The node is stopping: from now on SLIM's warnings and errors are left out.
pub fn stopping() {
    STOPPING.store(true, Ordering::Relaxed);
}

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
    /// Set once the node stops ([`stopping`] for the process's log).
    stopping: &'static AtomicBool,
}

/// A warning already shown: when, and how many like it were left out since.
struct Seen {
    shown: Instant,
    left_out: u64,
}

impl<W> Hygiene<W> {
    /// Writes to `out`; [`stopping`] says when the node stops.
    pub fn new(out: W) -> Hygiene<W> {
        Hygiene::stopping_with(out, &STOPPING)
    }

    fn stopping_with(out: W, stopping: &'static AtomicBool) -> Hygiene<W> {
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
            if self.stopping.load(Ordering::Relaxed) {
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
        if warns {
            // The same warning: the same text but for its numbers (a time, a count, an id).
            let key: String = line
                .split_once(' ')
                .map_or(line.as_str(), |(_time, rest)| rest)
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .collect();
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
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line == "Caused by:" {
            continue;
        }
        let cause = line.strip_prefix("->").map(str::trim_start);
        let part = cause.unwrap_or(line);
        if i > 0 {
            // A cause often repeats the message or the cause before it.
            if out.ends_with(part) {
                continue;
            }
            out.push_str(if cause.is_some() { ": " } else { " " });
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
        let log = Hygiene::stopping_with(io::sink(), stopping);
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
