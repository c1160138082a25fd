//! SLIM plumbing: the connection to a SLIM server, the node's identity, a SLIM server of our
//! own, TLS for both, the sockets' options and the runtime SLIM runs on.

pub(crate) mod completion;
pub(crate) mod connection;
pub(crate) mod identity;
pub(crate) mod peers;
pub mod runtime;
pub(crate) mod server;
pub(crate) mod sockets;
pub(crate) mod tls;
