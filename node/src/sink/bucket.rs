//! An S3 location, `s3://BUCKET/PREFIX` (S3 or any S3-compatible store, through the
//! `object_store` crate), and its client: what the `files` sink uploads to and where the
//! `store` sink keeps its sealed segments. The AWS variables (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, …) fill in what the options
//! (`endpoint=`, `region=`) leave out; requests are path-style, and plain `http://` is allowed
//! when the endpoint says so (warned about when it leaves this machine).

use object_store::aws::{AmazonS3, AmazonS3Builder};
use tracing::warn;

use super::kind::OptionSpec;

/// `endpoint=`, of every sink that names a bucket.
pub const ENDPOINT_OPTION: OptionSpec = OptionSpec {
    key: "endpoint",
    value: "URL",
    default: "AWS_ENDPOINT_URL, else AWS S3",
    help: "an S3-compatible server (path-style requests; `http://` allowed)",
    repeats: false,
};

/// `region=`, of every sink that names a bucket.
pub const REGION_OPTION: OptionSpec = OptionSpec {
    key: "region",
    value: "REGION",
    default: "AWS_REGION, else us-east-1",
    help: "the bucket's region",
    repeats: false,
};

/// A bucket and a prefix in it, and how to reach them.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The bucket.
    pub bucket: String,
    /// The prefix, without slashes at either end (may be empty).
    pub prefix: String,
    endpoint: Option<String>,
    region: Option<String>,
}

impl Bucket {
    /// From `url` (`s3://BUCKET/PREFIX`, given as `what`, e.g. `sink files: upload`) and the
    /// `endpoint=` and `region=` options.
    pub fn parse(
        what: &str,
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> anyhow::Result<Bucket> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            anyhow::anyhow!(
                "{what}={:?}: expected s3://BUCKET/PREFIX",
                crate::net::redact::urls(url)
            )
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "{what}={url:?} names no bucket");
        Ok(Bucket {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: endpoint.map(str::to_string),
            region: region.map(str::to_string),
        })
    }

    /// The object key of `path` under the prefix.
    pub fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    /// The client.
    pub fn client(&self) -> anyhow::Result<AmazonS3> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_virtual_hosted_style_request(false);
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(endpoint) = &endpoint {
            if crate::net::client::in_the_clear(endpoint) {
                warn!(endpoint = %crate::net::redact::urls(endpoint), "the object store is reached over plain http://: the data and the request signatures travel in the clear; use https://");
            }
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        builder
            .build()
            .map_err(|e| anyhow::anyhow!("the object store s3://{}: {e}", self.bucket))
    }
}
