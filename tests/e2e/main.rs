//! End-to-end tests: the real `cronhook` binary, driven through HTTP and its CLI, calling real
//! HTTP targets on loopback.

mod cluster;
mod operations;
mod operator;
mod schedules;
mod walking_skeleton;
