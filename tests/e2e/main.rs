//! End-to-end tests: the slim-node binary against a real SLIM server, over loopback.
//! Each test starts its own server and nodes on free ports.

mod harness;

mod cli_errors;
mod grpc;
mod http_answers;
mod scenarios;
mod up;
