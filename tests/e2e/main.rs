//! End-to-end tests: the real `cronhook` binary, driven through HTTP and its CLI, calling real
//! HTTP targets on loopback.

mod walking_skeleton;
