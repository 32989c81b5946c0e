//! day2's storage engine. Writes go to a checksummed write-ahead log and then
//! into the in-memory head (compressed chunks, postings index); the head is
//! cut into immutable on-disk blocks, which are compacted and deleted by
//! retention. Knows nothing of PromQL, HTTP or configuration files; does no
//! async.

pub mod block;
pub mod chunk;
mod db;
pub mod head;
pub mod histchunk;
pub mod postings;
mod record;
pub mod wal;

pub use db::{Db, Error, MaintenanceReport, Options, RecoveryReport, Stats};
pub use wal::FsyncPolicy;
