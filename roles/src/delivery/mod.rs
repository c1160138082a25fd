//! Delivery: what was taken is kept until every member acknowledged it. The outbox holds
//! messages (in memory, and in the spool on disk), the sender packs them into frames and
//! publishes them paced by acknowledgements, the receive loop hands what others published to
//! the consumer and acknowledges it once taken, the record of seen ids drops copies, and trust
//! credits each message to its MLS-verified sender.

pub(crate) mod frame;
pub(crate) mod incoming;
pub(crate) mod liveness;
pub(crate) mod message;
pub(crate) mod outbox;
pub(crate) mod receive;
pub(crate) mod seen;
pub(crate) mod sender;
pub(crate) mod spool;
pub(crate) mod trust;
