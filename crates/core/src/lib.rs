//! The domain core of cronhook: what a job, an execution and an attempt are, how a schedule
//! yields instants, how long to wait before a retry, and which inputs are valid.
//!
//! Architecture invariant: this crate does no I/O. It knows no database, no network, no clock of
//! its own (callers pass `now`), so every rule here is a pure function that tests can pin down.

pub mod alerting;
pub mod cache;
pub mod ids;
pub mod model;
pub mod net;
pub mod retry;
pub mod schedule;
pub mod secrets;
pub mod validate;

pub use model::*;
pub use schedule::{CompiledSchedule, ScheduleError, ScheduleSpec};
pub use validate::FieldError;
