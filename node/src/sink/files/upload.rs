//! Ships the `files` sink's closed files to object storage (S3 or any S3-compatible store,
//! through the `object_store` crate) under `PREFIX/<signal>/YYYY/MM/DD/<file name>`, gzip'd
//! when asked (`.log.gz`, `Content-Encoding: gzip`). Files go in order, oldest first; one the
//! store does not confirm is tried again with backoff (1 s doubling to 30 s) for as long as
//! the node runs, and the ones behind it wait. A file is deleted (or moved to `uploaded/`)
//! only once the store confirmed it, so after a restart only the upload that was in flight can
//! happen twice.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3;
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, PutPayload};
use serde::Serialize;
use slim_roles::Backoff;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::sink::bucket::Bucket;

/// Where and how closed files are uploaded.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    bucket: Bucket,
    gzip: bool,
    keep: bool,
}

impl UploadSettings {
    /// From `upload=s3://BUCKET/PREFIX` and the other options; the AWS variables fill in the
    /// rest when the store is opened.
    pub fn new(
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
        gzip: bool,
        keep: bool,
    ) -> anyhow::Result<UploadSettings> {
        Ok(UploadSettings {
            bucket: Bucket::parse("sink files: upload", url, endpoint, region)?,
            gzip,
            keep,
        })
    }

    /// The object key of the closed file `name` (`<stamp>[_NNNN].<signal>.log`).
    pub fn key(&self, name: &str) -> Option<String> {
        let mut parts = name.split('.');
        let stamp = parts.next()?;
        let signal = parts.next()?;
        let date = stamp.get(..8)?;
        let (y, m, d) = (date.get(..4)?, date.get(4..6)?, date.get(6..8)?);
        let file = if self.gzip {
            format!("{name}.gz")
        } else {
            name.to_string()
        };
        Some(self.bucket.key(&format!("{signal}/{y}/{m}/{d}/{file}")))
    }
}

/// What `/health` shows of one signal's uploads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignalUploads {
    /// Files uploaded (this run).
    pub uploaded: u64,
    /// Closed files waiting to be uploaded.
    pub waiting: usize,
    /// Attempts the store did not confirm.
    pub failed_attempts: u64,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What `/health` shows of the uploads: whether the uploader runs, and per signal.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UploadStats {
    /// Whether the uploader runs.
    pub running: bool,
    /// By signal (`traces`, `metrics`, `logs`).
    pub signals: std::collections::BTreeMap<String, SignalUploads>,
}

impl UploadStats {
    fn of(&mut self, path: &Path) -> &mut SignalUploads {
        let signal = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').nth(1))
            .unwrap_or("unknown");
        self.signals.entry(signal.to_string()).or_default()
    }
}

/// The running uploader.
pub struct Upload {
    notify: Arc<Notify>,
    stats: Arc<Mutex<UploadStats>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Upload {
    /// Starts uploading what is closed in `dir`.
    pub fn start(settings: UploadSettings, dir: PathBuf, sink: String) -> anyhow::Result<Upload> {
        let store = settings.bucket.client()?;
        let notify = Arc::new(Notify::new());
        let stats = Arc::new(Mutex::new(UploadStats {
            running: true,
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        info!(%sink, bucket = %settings.bucket.bucket, prefix = %settings.bucket.prefix, "uploading closed files to object storage");
        let task = tokio::spawn(upload_loop(
            store,
            settings,
            dir,
            sink,
            notify.clone(),
            stats.clone(),
            stop.clone(),
        ));
        Ok(Upload {
            notify,
            stats,
            stop,
            task,
        })
    }

    /// Told when a file closed.
    pub fn notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// What `/health` shows.
    pub fn report(&self) -> serde_json::Value {
        serde_json::to_value(&*crate::lock(&self.stats)).unwrap_or_default()
    }

    /// Stops after the file in flight (or at once while it waits to retry).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn upload_loop(
    store: AmazonS3,
    settings: UploadSettings,
    dir: PathBuf,
    sink: String,
    notify: Arc<Notify>,
    stats: Arc<Mutex<UploadStats>>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    'scan: loop {
        let files = match super::dir::closed_files(&dir) {
            Ok(files) => files,
            Err(err) => {
                warn!(%sink, %err, dir = %dir.display(), "cannot list the closed files");
                Vec::new()
            }
        };
        {
            let mut s = crate::lock(&stats);
            for signal in s.signals.values_mut() {
                signal.waiting = 0;
            }
            for (path, _) in &files {
                s.of(path).waiting += 1;
            }
        }
        for (path, _) in files {
            if stop.is_cancelled() {
                break 'scan;
            }
            match upload_one(&store, &settings, &path).await {
                Ok(key) => {
                    backoff.reset();
                    if let Err(err) = done_with(&dir, &path, settings.keep) {
                        warn!(%sink, file = %path.display(), %err, "uploaded, but could not remove the local file");
                    }
                    let mut s = crate::lock(&stats);
                    let signal = s.of(&path);
                    signal.uploaded += 1;
                    signal.waiting = signal.waiting.saturating_sub(1);
                    info!(%sink, file = %path.display(), %key, "uploaded");
                }
                Err(err) => {
                    let wait = backoff.next_delay();
                    warn!(%sink, file = %path.display(), %err, retry_in = ?wait, "upload failed; trying again");
                    {
                        let mut s = crate::lock(&stats);
                        let signal = s.of(&path);
                        signal.failed_attempts += 1;
                        signal.last_error = Some(err);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => break 'scan,
                    }
                    continue 'scan;
                }
            }
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.cancelled() => break,
        }
    }
    crate::lock(&stats).running = false;
}

/// Uploads one closed file; returns its key.
async fn upload_one(
    store: &AmazonS3,
    settings: &UploadSettings,
    path: &Path,
) -> Result<String, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("a file name that is not UTF-8")?;
    let key = settings
        .key(name)
        .ok_or_else(|| format!("{name} is not named YYYYMMDD-HHMMSS.<signal>.log"))?;
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut attributes = Attributes::new();
    let body = if settings.gzip {
        attributes.insert(Attribute::ContentEncoding, "gzip".into());
        otlp::compression::gzip(&data)
    } else {
        data
    };
    attributes.insert(Attribute::ContentType, "application/x-ndjson".into());
    let options = PutOptions {
        attributes,
        ..Default::default()
    };
    store
        .put_opts(
            &object_store::path::Path::from(key.as_str()),
            PutPayload::from(body),
            options,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(key)
}

/// After the store confirmed a file: remove it, or keep it in `uploaded/`.
fn done_with(dir: &Path, path: &Path, keep: bool) -> std::io::Result<()> {
    if keep {
        let kept = dir.join("uploaded");
        std::fs::create_dir_all(&kept)?;
        let name = path.file_name().unwrap_or_default();
        std::fs::rename(path, kept.join(name))
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_go_under_prefix_signal_and_date() {
        let s = UploadSettings::new("s3://telemetry/cluster-a/", None, None, false, false).unwrap();
        assert_eq!(
            s.key("20261127-010203.logs.log").as_deref(),
            Some("cluster-a/logs/2026/11/27/20261127-010203.logs.log")
        );
        assert_eq!(
            s.key("20261127-010203_0002.traces.log").as_deref(),
            Some("cluster-a/traces/2026/11/27/20261127-010203_0002.traces.log")
        );
        let gz = UploadSettings::new("s3://telemetry", None, None, true, false).unwrap();
        assert_eq!(
            gz.key("20261127-010203.metrics.log").as_deref(),
            Some("metrics/2026/11/27/20261127-010203.metrics.log.gz")
        );
    }

    #[test]
    fn an_upload_url_must_name_a_bucket() {
        assert!(UploadSettings::new("http://x/y", None, None, false, false).is_err());
        assert!(UploadSettings::new("s3:///prefix", None, None, false, false).is_err());
    }
}
