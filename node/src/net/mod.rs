//! What every server of the node shares: the HTTP server with its connection limits
//! (`server`), TLS for servers and clients (`tls`), bearer tokens (`auth`), the guard in front
//! of every route (`guard`: auth, rate limits, requests in progress), the one place that turns
//! a failure into an answer (`answer`), HTTP helpers (`http`), the health endpoints
//! (`health`), samples of refused requests in the log (`sample`) and when a request reached
//! the machine (`arrival`), a rate per key (`rate`); and what every HTTP client of the node does alike (`client`).

pub mod answer;
pub mod arrival;
pub mod auth;
pub mod client;
pub mod grpc_raw;
pub mod guard;
pub mod health_endpoints;
pub mod http;
pub mod http_server;
pub mod rate;
pub mod redact;
pub mod sample;
pub mod tls;
