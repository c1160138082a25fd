//! History: what arrived, kept in a [`store`] by the `store` sink and served back by the
//! query [`api`] page by page with a sealed [`cursor`]; [`client`] is the other end
//! (`slim-node fetch` and `slim-node replay`).

pub mod api;
pub mod catalog;
pub mod client;
pub mod cursor;
pub mod query;
pub mod segment;
pub mod store;

/// Now, in Unix nanoseconds (the unit of OTLP times and of the store's keys).
pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
