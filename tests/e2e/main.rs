//! End-to-end tests: the real `cronhook` binary, driven through HTTP and its CLI, calling real
//! HTTP targets on loopback.

mod alerts;
mod cluster;
mod dashboard;
mod lifecycle;
mod operations;
mod operator;
mod schedules;
mod security;
mod security_fuzz;
mod signature_readme;
mod walking_skeleton;
