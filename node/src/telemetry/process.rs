//! The process: CPU time, resident memory, open file descriptors and uptime, read from
//! `/proc/self` when the metrics are collected (Linux; elsewhere these series are absent).

use std::time::Instant;

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

/// Instruments registered for the process; they report for as long as this is kept.
pub(super) struct ProcessMetrics {
    _instruments: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// User and system CPU seconds of this process, from `/proc/self/stat`.
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let (user, system): (u64, u64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((user as f64 / ticks, system as f64 / ticks))
}

/// Resident memory in bytes, from `/proc/self/status`.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Open file descriptors, from `/proc/self/fd`.
fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

pub(super) fn watch(meter: &Meter, started: Instant) -> ProcessMetrics {
    let all: Vec<Box<dyn std::any::Any + Send + Sync>> = vec![
        Box::new(
            meter
                .f64_observable_counter("process.cpu.time")
                .with_unit("s")
                .with_description("CPU seconds the process used, by mode (user, system)")
                .with_callback(|o| {
                    if let Some((user, system)) = cpu_seconds() {
                        o.observe(user, &[KeyValue::new("cpu.mode", "user")]);
                        o.observe(system, &[KeyValue::new("cpu.mode", "system")]);
                    }
                })
                .build(),
        ),
        Box::new(
            meter
                .u64_observable_gauge("process.memory.usage")
                .with_unit("By")
                .with_description("Resident memory of the process")
                .with_callback(|o| {
                    if let Some(bytes) = rss_bytes() {
                        o.observe(bytes, &[]);
                    }
                })
                .build(),
        ),
        Box::new(
            meter
                .u64_observable_gauge("process.unix.file_descriptors")
                .with_unit("{file_descriptor}")
                // OpenTelemetry's `process.unix.file_descriptor.count`, less the `.count`
                // Prometheus reserves for histograms and summaries.
                .with_description("File descriptors the process holds open")
                .with_callback(|o| {
                    if let Some(n) = open_fds() {
                        o.observe(n, &[]);
                    }
                })
                .build(),
        ),
        Box::new(
            meter
                .f64_observable_gauge("process.uptime")
                .with_unit("s")
                .with_description(
                    "Seconds since the process's telemetry started (when its first node did)",
                )
                .with_callback(move |o| o.observe(started.elapsed().as_secs_f64(), &[]))
                .build(),
        ),
    ];
    ProcessMetrics { _instruments: all }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_its_cpu_memory_and_descriptors_on_linux() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let (user, system) = cpu_seconds().expect("cpu times");
        assert!(user >= 0.0 && system >= 0.0);
        assert!(
            rss_bytes().expect("rss") > 1024 * 1024,
            "a running test holds more than 1 MiB"
        );
        assert!(
            open_fds().expect("fds") >= 3,
            "stdin, stdout, stderr at least"
        );
    }
}
